"""Secrets in a real wandb run (issue 19, item 6): credentials nested at any depth, or recognisable by
their shape wherever they are, never reach exports/; ordinary values that merely look alike stay."""

from __future__ import annotations

import json

import pytest

from test_hostile_content import snapshot
from test_hostile_runs import QUIET_OFFLINE, _make_run, fetch

wandb = pytest.importorskip("wandb")

PLANTED = {
    "servers": [{"host": "db1", "password": "PLANTEDnestedPW1"}],  # a password in a list of mappings
    "deploy": {"auth": {"user": "PLANTEDauthUSER"}},  # anything under a secret-like name, at any depth
    "hf": "hf_PLANTEDPLANTEDPLANTEDPLANTED12",
    "headers": "Authorization: Bearer PLANTEDbearerTOKEN123",
    "database_url": "postgres://admin:PLANTEDurlPW@db.internal:5432/runs",
    "aws_id": "AKIAPLANTEDAWSKEY123",
    "argv": ["train.py", "--lr", "0.1", "--token=PLANTEDargvTOKEN1"],
    "gh": "ghp_PLANTEDPLANTEDPLANTEDPLANTEDPLANTED1",
}
HARMLESS = {
    "lr": 0.1,
    "max_tokens": 512,
    "tokenizer": "bpe",
    "homepage": "https://example.com/report",
    "endpoint": "http://localhost:8080/v1",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "schedule": {"warmup": 5, "kind": "cosine"},
}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        for key, value in QUIET_OFFLINE.items():
            env.setenv(key, value)
        env.delenv("WANDB_API_KEY", raising=False)
        root = tmp_path_factory.mktemp("secrets-wandb")
        run = _make_run(root, "secret-shapes", 3, {**PLANTED, **HARMLESS})
        out = root / "exports" / "runs"
        rc, _, err = fetch(str(run), "--out", str(out), "--name", "r")
        assert rc == 0, err
        return out / "r"


def test_no_planted_credential_reaches_exports(export):
    for rel, data in snapshot(export.parent).items():
        assert b"PLANTED" not in data, rel
    config = json.loads((export / "config.json").read_text())
    for key in ("servers", "deploy/auth/user", "hf", "headers", "database_url", "aws_id", "argv", "gh"):
        assert config[key] == "[redacted]", key
    meta = json.loads((export / "meta.json").read_text())
    assert "config.json#servers" in meta["redacted"] and "config.json#deploy/auth/user" in meta["redacted"]


def test_values_that_only_look_alike_are_kept(export):
    config = json.loads((export / "config.json").read_text())
    expected = {"lr": 0.1, "max_tokens": 512, "tokenizer": "bpe", "homepage": "https://example.com/report",
                "endpoint": "http://localhost:8080/v1", "git_commit": HARMLESS["git_commit"],
                "schedule/warmup": 5, "schedule/kind": "cosine"}
    assert {k: config[k] for k in expected} == expected
