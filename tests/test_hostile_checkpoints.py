"""Hostile checkpoints and data archives (issue 9): nothing the project loads can run code.

A pickle whose `__reduce__` opens (creates) a marker file is planted wherever a model or data file is
read: as a `torch.save` file, disguised as a safetensors shard with a matching sha256, and inside a
CIFAR archive. The marker must never appear, and each case is a one-line error naming the file.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from site_builder import cli  # noqa: E402
from site_builder.errors import UserError  # noqa: E402
from site_builder.train.checkpoint import INFO_FILE, load_model, save_checkpoint  # noqa: E402
from site_builder.train.data import load_cifar100  # noqa: E402
from site_builder.train.model import ViT, ViTConfig  # noqa: E402

TINY = ViTConfig(patch_size=4, width=32, depth=2, heads=2)
PACKAGE = Path(__file__).resolve().parents[1] / "site_builder"


class Payload:
    """Unpickling this calls open(marker, "w"): the file appearing proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


def live_pickle(marker: Path, proof_dir: Path) -> bytes:
    """The payload bytes; first shown to be live by unpickling a copy aimed at another marker."""
    proof = proof_dir / "payload-is-live"
    pickle.loads(pickle.dumps({"weights": Payload(proof)}))
    assert proof.exists()  # the payload really executes when unpickled
    return pickle.dumps({"weights": Payload(marker)})


def torch_file(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def analyze(checkpoint: Path, tmp_path: Path) -> tuple[int, str]:
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["analyze", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "no-data"),
                       "--out", str(tmp_path / "figures"), "--device", "cpu"])
    return rc, err.getvalue()


def assert_one_line(rc: int, err: str, *where: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for part in where:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("wrapping", ["torch.save", "raw pickle"])
def test_a_pickle_payload_given_as_checkpoint_never_runs(tmp_path, marker, wrapping):
    payload = live_pickle(marker, tmp_path)
    evil = tmp_path / "last.pt"
    evil.write_bytes(torch_file({"weights": Payload(marker)}) if wrapping == "torch.save" else payload)
    rc, err = analyze(evil, tmp_path)
    assert_one_line(rc, err, str(evil))
    with pytest.raises(UserError):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.parametrize("wrapping", ["torch.save", "raw pickle"])
def test_a_pickle_disguised_as_a_shard_with_a_matching_sha256_never_runs(tmp_path, marker, wrapping):
    """The sha256 in checkpoint.json only proves integrity, not safety: the shard is still parsed as safetensors."""
    payload = live_pickle(marker, tmp_path)
    ckpt = save_checkpoint(tmp_path / "checkpoints/evil/final", ViT(TINY))
    shard = next(ckpt.glob("model-*.safetensors"))
    shard.write_bytes(torch_file({"weights": Payload(marker)}) if wrapping == "torch.save" else payload)
    info = json.loads((ckpt / INFO_FILE).read_text())
    info["files"][shard.name] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (ckpt / INFO_FILE).write_text(json.dumps(info))
    rc, err = analyze(ckpt, tmp_path)
    assert_one_line(rc, err, str(shard), "safetensors")
    assert not marker.exists()


def test_a_pickle_payload_in_a_cifar_archive_never_runs(tmp_path, marker):
    """The official CIFAR archive is a tar of pickles; its reader allows numpy arrays and containers only."""
    payload = live_pickle(marker, tmp_path)
    archive = tmp_path / "data" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-100-python/test")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()  # the caller vouches for this archive's checksum
    with pytest.raises(UserError) as caught:
        load_cifar100(archive.parent, "test", md5=md5)
    assert "cifar-100-python/test" in str(caught.value) and str(archive) in str(caught.value)
    assert not marker.exists()


def test_a_checkpoint_of_another_architecture(tmp_path):
    """Weights from a wider model under this model's config, and a config that does not fit the weights."""
    wide = save_checkpoint(tmp_path / "checkpoints/wide/final", ViT(ViTConfig(patch_size=4, width=64, depth=2, heads=2)))
    info = json.loads((wide / INFO_FILE).read_text())
    info["model_config"] = TINY.to_dict()
    (wide / INFO_FILE).write_text(json.dumps(info))
    rc, err = analyze(wide, tmp_path)
    assert_one_line(rc, err, str(wide / INFO_FILE), "do not fit")

    odd = save_checkpoint(tmp_path / "checkpoints/odd/final", ViT(TINY))
    info = json.loads((odd / INFO_FILE).read_text())
    info["model_config"]["layers_of_a_resnet"] = [3, 4, 6, 3]
    (odd / INFO_FILE).write_text(json.dumps(info))
    rc, err = analyze(odd, tmp_path)
    assert_one_line(rc, err, str(odd / INFO_FILE))


def test_no_code_path_unpickles(tmp_path):
    """Static guard for new code: every torch.load passes weights_only=True, numpy never allows pickles,
    and pickle is only read through a restricted Unpickler (find_class overridden)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        restricted = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                      and any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if name == "torch.load" and keywords.get("weights_only") != "True":
                problems.append(f"{where}: torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") and keywords.get("allow_pickle", "False") != "False":
                problems.append(f"{where}: np.load with allow_pickle")
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "torch.serialization.load"):
                problems.append(f"{where}: {name}")
            if name.endswith("Unpickler") and name != "pickle.Unpickler" and name.split(".")[-1] not in restricted:
                problems.append(f"{where}: {name} without a find_class restriction")
    assert not problems, problems


@pytest.mark.parametrize("run_name", ["../../escaped", "/tmp/absolute-escape", "a/../../b", ".."])
def test_a_run_name_in_checkpoint_json_cannot_steer_output_out_of_the_figures_folder(tmp_path, monkeypatch, run_name):
    """checkpoint.json's 'run' names the output folder; from a foreign checkpoint it is untrusted text."""
    import numpy as np

    from site_builder.train import data

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for split, n in (("test", 200), ("train", 100)):
        x = np.random.default_rng(0).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        np.savez_compressed(data_dir / f"{split}-00.npz", x=x, y_fine=np.arange(n) % 100, y_coarse=np.arange(n) % 20)
        monkeypatch.setitem(data.SHARD_MD5, split, hashlib.md5(x.tobytes()).hexdigest())
    ckpt = save_checkpoint(tmp_path / "work/checkpoints/foreign/final", ViT(TINY), extra_info={"run": run_name})
    out = tmp_path / "work/exports/figures"
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    err = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["analyze", "--checkpoint", str(ckpt), "--data", str(data_dir), "--out", str(out),
                       "--device", "cpu", "--images", "1,2", "--embeddings", "50"])
    created = sorted(set(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) - set(before))
    assert all(path.startswith("work/exports/figures/") or path == "work/exports/figures" for path in created), created
    assert not Path("/tmp/absolute-escape").exists()
    assert_one_line(rc, err.getvalue(), str(ckpt / INFO_FILE), "field 'run'")
