"""`llmctl clean` with the datatrove recipe where spaCy is missing: exit 2, one line naming the key."""

from __future__ import annotations

import json
import os

from tests.conftest import REPO, llmctl


def test_datatrove_recipe_without_spacy_exits_2_naming_word_tokenizer(tmp_path):
    blocker = tmp_path / "no-spacy" / "spacy"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('spaCy is blocked for this test')\n")
    docs = tmp_path / "in.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": "A short document."}) + "\n")
    path = os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    recipe = REPO / "recipes" / "clean" / "datatrove-gopher-c4.yaml"
    res = llmctl("clean", str(docs), "--out", str(out), "--config", str(recipe), env={"PYTHONPATH": path})
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: word_tokenizer: 'spacy' needs spaCy"), res.stderr
    assert "pip install spacy" in lines[0] and "set word_tokenizer to 'regex'" in lines[0]
    assert not (out / "manifest.json").exists()
