import pytest

from merbench.errors import UnknownNameError
from merbench.registry import METHODS, Registry, get_method, load_builtins


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError) as e:
        get_method("mlpp")
    assert "did you mean 'mlp'" in e.value.message
    assert "bench list methods" in e.value.fix


def test_duplicate_names_rejected():
    r = Registry("thing")

    @r.register("a")
    class A:
        pass

    with pytest.raises(ValueError, match="duplicate thing name 'a'"):
        @r.register("a")
        class B:
            pass


def test_lazy_entries_import_on_first_use():
    r = Registry("thing")
    r.add_lazy({"ordered": "collections:OrderedDict", "other": "merbench.methods.mlp.method:MLPMethod"})
    assert isinstance(r._entries["ordered"], str)
    assert r.get("ordered").__name__ == "OrderedDict"
    assert not isinstance(r._entries["ordered"], str)
    with pytest.raises(ValueError, match="named 'mlp'"):  # a class must carry the name it is registered under
        r.get("other")


def test_builtin_tables_resolve_to_classes_with_their_names():
    load_builtins()
    for name in METHODS.names():
        assert METHODS.get(name).name == name
