import pytest

import charchat


def test_every_export_resolves():
    for name in charchat.__all__:
        assert getattr(charchat, name) is not None, name
    assert set(dir(charchat)) == set(charchat.__all__)


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="nothing_here"):
        charchat.nothing_here
