"""llmctl's import hooks (llmctl/__init__.py): each runs its function on the one module it names,
right after that module executes and before anything can import a name from it."""

from __future__ import annotations

import sys
import types

import llmctl


def test_after_import_runs_on_the_named_module_once(tmp_path, monkeypatch):
    (tmp_path / "citime_pkg").mkdir()
    (tmp_path / "citime_pkg" / "__init__.py").write_text("")
    (tmp_path / "citime_pkg" / "jit.py").write_text("fuser = 'compile'\n")
    (tmp_path / "citime_pkg" / "user.py").write_text("from citime_pkg.jit import fuser\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def then(module: types.ModuleType) -> None:
        seen.append(module.__name__)
        module.fuser = "noop"

    hook = llmctl._AfterImport("citime_pkg.jit", then)
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    try:
        import citime_pkg.user

        assert citime_pkg.user.fuser == "noop"  # the importer saw the patched name
        assert seen == ["citime_pkg.jit"] and hook not in sys.meta_path  # once, then out of the way
    finally:
        for name in ("citime_pkg", "citime_pkg.jit", "citime_pkg.user"):
            sys.modules.pop(name, None)


def test_torchao_counts_as_available_only_once_imported(monkeypatch):
    utils = types.SimpleNamespace(is_torchao_available=lambda min_version="0.4": True)
    llmctl._torchao_only_when_imported(utils)
    monkeypatch.delitem(sys.modules, "torchao", raising=False)
    assert utils.is_torchao_available() is False  # transformers then skips `import torchao`
    monkeypatch.setitem(sys.modules, "torchao", types.ModuleType("torchao"))
    assert utils.is_torchao_available("0.4") is True  # gptqmodel imported it: transformers sees it


def test_megatron_fusers_stay_compiled_with_cuda(monkeypatch):
    import torch

    calls = []
    jit = types.SimpleNamespace(disable_jit_fuser=lambda: calls.append("off"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    llmctl._eager_megatron_fusers_without_cuda(jit)
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    llmctl._eager_megatron_fusers_without_cuda(jit)
    assert calls == ["off"]
