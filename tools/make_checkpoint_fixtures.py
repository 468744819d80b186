#!/usr/bin/python3
"""Writes the checkpoint fixtures of Tests/InferenceTests/CheckpointTests.swift.

Run with Debian's Python and PyTorch (python3-torch, 1.13):

    /usr/bin/python3 tools/make_checkpoint_fixtures.py

Everything is deterministic (fixed seeds; torch.save's zip records are named after the file's stem and
carry fixed timestamps), so re-running rewrites byte-identical files. It writes into
Tests/InferenceTests/Fixtures/checkpoints/:

  head.pth              {'state_dict': <CS-MIL head state_dict, spec §4, D = 16>}
  head_module.pth       the same through nn.DataParallel ("module." names) plus legacy keys (epoch, ...)
  head.safetensors      the same tensors as a safetensors file (written by hand below)
  simsiam.pth           SimSiam layout: backbone.*, projector.*, predictor.*, int64 num_batches_tracked,
                        epoch and a real SGD optimizer state (with momentum tensors, to be ignored)
  torchvision_plain.pth a bare torchvision-style state_dict (an OrderedDict at the top), with fc.*
  dtypes.pth            every dtype (f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool), special values
  dtypes.safetensors    the same as safetensors
  noncontiguous.pth     transposed, permuted, stepped, offset, expanded (zero-stride), 0-d and empty tensors
  nested.pth            tensors inside nested lists, tuples and dicts next to ints, floats, strings, None
  nested_p4.pth         the same with pickle protocol 4 (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE)
  tiny.pth              two small tensors, and the same re-packed as:
  tiny_zip64.pth          a zip64 archive (zip64 EOCD record and locator, zip64 extra fields everywhere)
  tiny_deflated.pth       a zip archive with deflated entries (must be refused)
  tiny_legacy.pth         the start of PyTorch's pre-1.6 (non-zip) format (must be refused)
  malicious.pth         a torch.save file whose pickle calls posix.system (protocol 2, GLOBAL)
  malicious_eval.pth    a torch.save file whose pickle calls builtins.eval (protocol 4, STACK_GLOBAL)
  expected.json         names, shapes, dtypes and values (float32, little-endian, base64) as PyTorch sees
                        them after .contiguous().float(); which files are malicious and what they would do

Nothing here ever calls torch.load or unpickles the malicious files.
"""

import base64
import collections
import json
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "Tests" / "InferenceTests" / "Fixtures" / "checkpoints"
D = 16

DTYPE_NAMES = {
    torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64",
    torch.int64: "int64", torch.int32: "int32", torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8",
    torch.bool: "bool",
}
SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


class CSMILHead(nn.Module):
    """The CS-MIL head of spec §4 (only its parameter names and shapes matter here)."""

    def __init__(self, d):
        super().__init__()
        self.embedding_net = nn.Sequential(nn.Conv2d(d, 64, 1), nn.ReLU())
        self.res_attention = nn.Sequential(nn.Conv2d(64, 32, 1), nn.ReLU(), nn.Conv2d(32, 1, 1))
        self.attention = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))
        self.fc6 = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1), nn.Sigmoid())


def expected_tensors(named):
    """[(name, tensor)] -> JSON records with float32 values exactly as PyTorch converts them."""
    records = []
    for name, tensor in named:
        values = tensor.detach().contiguous().float().flatten().numpy().astype("<f4").tobytes()
        records.append({
            "name": name,
            "shape": list(tensor.shape),
            "dtype": DTYPE_NAMES[tensor.dtype],
            "f32le": base64.b64encode(values).decode("ascii"),
        })
    return records


def flatten(obj, prefix=""):
    """The tensors of nested containers with dotted names, as csmil's loader names them."""
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    items = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            items += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            items += flatten(value, f"{prefix}.{index}" if prefix else str(index))
    return items


def write_safetensors(path, named):
    """The safetensors format: u64 LE header length, JSON header (padded with spaces to 8 bytes), data."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, tensor in named:
        raw = tensor.detach().contiguous()
        # View the raw bytes as uint8 before handing them to numpy, which has no bfloat16.
        blob = raw.view(-1).view(torch.uint8).numpy().tobytes() if raw.numel() else b""
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[raw.dtype],
            "shape": list(raw.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_records(path):
    """The (name, bytes) records of a torch.save zip, in order (read as a zip, never unpickled)."""
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def write_zip64(path, records):
    """A stored zip archive that uses zip64 everywhere: 0xFFFFFFFF sizes and offsets with zip64 extra fields
    in local and central headers, a zip64 end-of-central-directory record and locator, and a saturated
    classic end record."""
    out = bytearray()
    central = bytearray()
    for name, data in records:
        offset = len(out)
        crc = zlib.crc32(data)
        encoded = name.encode("utf-8")
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(encoded), len(local_extra))
        out += encoded + local_extra + data
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(encoded), len(central_extra), 0, 0, 0, 0, 0xFFFFFFFF)
        central += encoded + central_extra
    directory_offset = len(out)
    out += central
    zip64_record = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(records), len(records), len(central),
                       directory_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_record, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(bytes(out))
    with zipfile.ZipFile(path) as check:  # Python's own reader must agree
        assert check.testzip() is None
        assert [(i.filename, check.read(i)) for i in check.infolist()] == records


def write_deflated(path, records):
    """The same records re-packed by zipfile with deflate compression and fixed timestamps."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in records:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)


def write_legacy_header(path):
    """The three pickles that open a pre-1.6 torch.save file (magic number, protocol version, sys_info),
    exactly as torch.serialization._legacy_save writes them. The rest of such a file names its storages by
    memory address, so it is not reproducible; the loader refuses the file from its first bytes anyway."""
    import pickle
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    sys_info = dict(protocol_version=PROTOCOL_VERSION, little_endian=True,
                    type_sizes=dict(short=2, int=4, long=4))
    path.write_bytes(b"".join(pickle.dumps(value, protocol=2) for value in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info)))


class Malicious:
    """Pickles as a call of `function(argument)`: what a hostile checkpoint would run under torch.load."""

    def __init__(self, function, argument):
        self.function = function
        self.argument = argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    expected = {"files": {}, "backbones": {}, "malicious": []}

    # --- The CS-MIL head, plain and through DataParallel, and as safetensors.
    head = CSMILHead(D)
    head_state = head.state_dict()
    torch.save({"state_dict": head_state}, OUT / "head.pth")
    expected["files"]["head.pth"] = {"tensors": expected_tensors(head_state.items())}
    parallel = nn.DataParallel(head).state_dict()
    assert all(name.startswith("module.") for name in parallel)
    torch.save({"state_dict": parallel, "epoch": 3, "best_loss": 0.25, "arch": "csmil"}, OUT / "head_module.pth")
    expected["files"]["head_module.pth"] = {"same_as": "head.pth"}
    write_safetensors(OUT / "head.safetensors", list(head_state.items()))
    expected["files"]["head.safetensors"] = {"same_as": "head.pth"}

    # --- SimSiam layout: backbone.* (a tiny ResNet-like stem), projector.*, predictor.*.
    def bn(prefix, channels):
        return [
            (f"{prefix}.weight", torch.rand(channels) + 0.5), (f"{prefix}.bias", torch.randn(channels) * 0.1),
            (f"{prefix}.running_mean", torch.randn(channels) * 0.1),
            (f"{prefix}.running_var", torch.rand(channels) + 0.5),
            (f"{prefix}.num_batches_tracked", torch.tensor(1234, dtype=torch.int64)),
        ]

    backbone = [("conv1.weight", torch.randn(4, 3, 3, 3))] + bn("bn1", 4)
    backbone += [("layer1.0.conv1.weight", torch.randn(4, 4, 1, 1))] + bn("layer1.0.bn1", 4)
    backbone += [("fc.weight", torch.randn(3, 4)), ("fc.bias", torch.randn(3))]
    heads = [("projector.0.weight", torch.randn(6, 4))] + bn("projector.1", 6)
    heads += [("predictor.0.weight", torch.randn(4, 6)), ("predictor.0.bias", torch.randn(4))]
    simsiam = collections.OrderedDict([(f"backbone.{n}", t) for n, t in backbone] + heads)
    parameters = [nn.Parameter(t.clone()) for n, t in backbone if t.is_floating_point()]
    optimizer = torch.optim.SGD(parameters, lr=0.05, momentum=0.9, weight_decay=1e-4)
    for parameter in parameters:
        parameter.grad = torch.ones_like(parameter)
    optimizer.step()
    torch.save({"epoch": 3, "arch": "resnet50", "state_dict": simsiam, "optimizer": optimizer.state_dict()},
               OUT / "simsiam.pth")
    expected["files"]["simsiam.pth"] = {"tensors": expected_tensors(simsiam.items())}
    expected["backbones"]["simsiam.pth"] = [n for n, _ in backbone if not n.startswith("fc.")]

    plain = collections.OrderedDict(backbone)
    torch.save(plain, OUT / "torchvision_plain.pth")
    expected["files"]["torchvision_plain.pth"] = {"tensors": expected_tensors(plain.items())}
    expected["backbones"]["torchvision_plain.pth"] = [n for n, _ in backbone if not n.startswith("fc.")]

    # --- Every dtype, with the values where conversions go wrong.
    def bits(values, dtype):
        return torch.tensor(values, dtype=torch.int32).to(torch.int16).view(dtype)

    half_bits = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3555, 0x7BFF, 0xFBFF, 0x7C00,
                 0xFC00, 0x7E00]
    bfloat_bits = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x3F80, 0xBF80, 0x3EAB, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
                   0x7FC0]
    to_signed = lambda values: [v - 0x10000 if v >= 0x8000 else v for v in values]  # noqa: E731
    dtypes = {
        "f32": torch.tensor([0.0, -0.0, 1.5, -2.25, 3.4028234663852886e38, 1.401298464324817e-45,
                             float("inf"), float("-inf"), float("nan"), 0.1]),
        "f16": bits(to_signed(half_bits), torch.float16),
        "f16_random": torch.randn(3, 4).half(),
        "bf16": bits(to_signed(bfloat_bits), torch.bfloat16),
        "bf16_random": torch.randn(2, 3).bfloat16(),
        "f64": torch.tensor([0.1, -1e300, 1e300, 1e-50, 1 / 3, 2.0 ** -149, 16777217.0, -0.0, 5e-324],
                            dtype=torch.float64),
        "i64": torch.tensor([0, -1, 7, 2 ** 53 + 1, 16777217, -(2 ** 63), 2 ** 63 - 1, 2 ** 40 + 3],
                            dtype=torch.int64),
        "i32": torch.tensor([0, -1, 2 ** 31 - 1, -(2 ** 31), 16777217], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, -1, 0], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, -1, 0], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
    }
    torch.save(dtypes, OUT / "dtypes.pth")
    expected["files"]["dtypes.pth"] = {"tensors": expected_tensors(dtypes.items())}
    write_safetensors(OUT / "dtypes.safetensors", list(dtypes.items()))
    expected["files"]["dtypes.safetensors"] = {"same_as": "dtypes.pth"}

    # --- Views: the storage is saved whole and each tensor keeps its offset and strides.
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5) * 0.5 - 7
    matrix = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    views = {
        "transposed": matrix.t(),
        "permuted": base.permute(2, 0, 1),
        "stepped": base[:, ::2, 1::3],
        "offset": base.view(-1)[7:19].view(3, 4),
        "offset_strided": base[1:, 1:, ::2],
        "expanded": torch.arange(3, dtype=torch.float32).view(3, 1).expand(3, 4),
        "broadcast_scalar": torch.tensor(2.5).expand(2, 3),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "half_transposed": base[0].half().t(),
        "int_stepped": torch.arange(20).view(4, 5)[::2, 1::2],
        "column": matrix[:, 2],
    }
    assert not views["transposed"].is_contiguous() and views["offset"].storage_offset() == 7
    assert views["expanded"].stride() == (1, 0)
    torch.save(views, OUT / "noncontiguous.pth")
    expected["files"]["noncontiguous.pth"] = {"tensors": expected_tensors(views.items())}

    # --- Nested containers around tensors; one tensor appears twice (a memo reference).
    shared = torch.randn(2, 3)
    nested = {
        "a": [shared, (torch.randn(4), 3, "x"), {"b": torch.arange(6, dtype=torch.int32).view(2, 3), "n": None}],
        "meta": {"epoch": 3, "lr": 0.1, "name": "csmil", "flags": [True, False, None], "big": 2 ** 40, "neg": -5,
                 "tuple": (1, 2.5, "z"), "empty": {}},
        "c": shared,
        7: torch.randn(2, 2),
    }
    torch.save(nested, OUT / "nested.pth")
    torch.save(nested, OUT / "nested_p4.pth", pickle_protocol=4)
    expected["files"]["nested.pth"] = {"tensors": expected_tensors(flatten(nested))}
    expected["files"]["nested_p4.pth"] = {"same_as": "nested.pth"}

    # --- The same small archive in other containers.
    tiny = {"state_dict": collections.OrderedDict(
        [("w", torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25), ("b", torch.tensor([1.0, -1.0]))])}
    torch.save(tiny, OUT / "tiny.pth")
    expected["files"]["tiny.pth"] = {"tensors": expected_tensors(tiny["state_dict"].items())}
    write_zip64(OUT / "tiny_zip64.pth", read_records(OUT / "tiny.pth"))
    expected["files"]["tiny_zip64.pth"] = {"same_as": "tiny.pth"}
    write_deflated(OUT / "tiny_deflated.pth", read_records(OUT / "tiny.pth"))
    write_legacy_header(OUT / "tiny_legacy.pth")

    # --- Hostile files: under torch.load these would create the marker files.
    rng = random.Random(20240611)
    for file_name, function, command_for, protocol, global_name in [
        ("malicious.pth", os.system, lambda marker: f"touch {marker}", 2, "posix.system"),
        ("malicious_eval.pth", eval, lambda marker: f"__import__('os').system('touch {marker}')", 4,
         "builtins.eval"),
    ]:
        marker = f"/tmp/csmil-pwned-{rng.getrandbits(64):016x}"
        hostile = {"state_dict": {"w": torch.ones(2)}, "payload": Malicious(function, command_for(marker))}
        torch.save(hostile, OUT / file_name, pickle_protocol=protocol)
        expected["malicious"].append({"file": file_name, "global": global_name, "marker": marker})

    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    total = sum(path.stat().st_size for path in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
