"""rtdetr-patch: patch an installed Ultralytics so RT-DETR trains with list-returning backbones."""

__version__ = "0.3.0"
