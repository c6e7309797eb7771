"""Before/after cases of repc3-expansion (blog step 5.1): the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.repc3 import RepC3Expansion

REPC3_BEFORE = src('''
    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)


    class RepC3(nn.Module):
        """Rep C3."""

        def __init__(self, c1, c2, n=3, e=1.0):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)
            self.m = nn.Sequential(*[RepConv(c_, c_) for _ in range(n)])
            self.cv3 = Conv(c_, c2, 1, 1) if c_ != c2 else nn.Identity()
''')
REPC3_AFTER = src('''
    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)


    class RepC3(nn.Module):
        """Rep C3."""

        def __init__(self, c1, c2, n=3, e=1.0):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)
            self.cv2 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)
            self.m = nn.Sequential(*[RepConv(c_, c_) for _ in range(n)])
            self.cv3 = Conv(c_, c2, 1, 1) if c_ != c2 else nn.Identity()
''')


def test_repc3():
    assert_before_after(RepC3Expansion, REPC3_BEFORE, REPC3_AFTER)


def test_repc3_not_needed_when_upstream_fixed():
    fixed = REPC3_BEFORE.replace(
        "self.cv1 = Conv(c1, c2, 1, 1)\n        self.cv2 = Conv(c1, c2, 1, 1)\n        self.m",
        "self.cv1 = Conv(c1, c_, 1, 1)\n        self.cv2 = Conv(c1, c_, 1, 1)\n        self.m",
    )
    assert fixed != REPC3_BEFORE
    code, outcome = transform(RepC3Expansion, fixed)
    assert outcome is Outcome.NOT_NEEDED and code == fixed


def test_repc3_missing():
    only_c3 = REPC3_BEFORE.split("\n\n\nclass RepC3")[0] + "\n"
    assert_missing(RepC3Expansion, only_c3, "self.cv1 = Conv(c1, ...)", "RepC3.__init__")
    no_cv2 = REPC3_BEFORE.replace("        self.cv2 = Conv(c1, c2, 1, 1)\n        self.m", "        self.m")
    assert no_cv2.count("self.cv2") == REPC3_BEFORE.count("self.cv2") - 1
    assert_missing(RepC3Expansion, no_cv2, "self.cv2 = Conv(c1, ...)", "RepC3.__init__")


def test_repc3_half_fixed_is_refused():
    half = REPC3_AFTER.replace(
        "self.cv2 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)",
        "self.cv2 = Conv(c1, c2, 1, 1)",
    )
    assert_missing(RepC3Expansion, half, "RepC3.__init__", "hand-edited")
