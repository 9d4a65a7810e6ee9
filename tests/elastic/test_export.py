"""Exporting a sub-net: parity with the masked supernet, sizes, configs, model directories."""

import json

import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json
from attncoach.data.tokenizer import save_tokenizer, train_tokenizer
from attncoach.elastic.export import export_model_dir, export_subnet
from attncoach.elastic.importance import importance, rewire
from attncoach.elastic.space import subnet_for
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.saved import MODEL_FORMAT, SavedClassifier

VOCAB, B, T = 60, 4, 9

SUBNETS = {
    "full": SubnetConfig(),
    "uniform half": SubnetConfig(layers=(0, 2), heads=(2, 2, 2), ffn=(16, 16, 16)),
    "per-layer, middle dropped": SubnetConfig(layers=(0, 2), heads=(4, 1, 3), ffn=(32, 5, 9)),
    "one layer, one head": SubnetConfig(layers=(1,), heads=(1, 1, 1), ffn=(1, 1, 1)),
    "heads only": SubnetConfig(heads=(3, 4, 1)),
}


def _model(norm_first: bool = True, seed: int = 0, **overrides) -> TextClassifier:
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=VOCAB,
        dim=16,
        layers=3,
        heads=4,
        ffn_dim=32,
        max_position=16,
        norm_first=norm_first,
        type_vocab_size=0 if norm_first else 2,
    )
    model = TextClassifier(EncoderConfig(**{**settings, **overrides}), num_labels=3, head_dropout=0.2)
    with torch.no_grad():  # non-zero biases and norms, so that a wrong slice shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _inputs(model: TextClassifier) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 5:] = False
    inputs = {"input_ids": torch.randint(1, VOCAB, (B, T)), "attention_mask": mask}
    if model.encoder.config.type_vocab_size:
        inputs["token_type_ids"] = torch.randint(0, 2, (B, T))
    return inputs


def _masked_logits(model: TextClassifier, subnet: SubnetConfig, inputs) -> torch.Tensor:
    model.set_subnet(subnet)
    try:
        return model(**inputs)
    finally:
        model.set_subnet(None)


@pytest.mark.parametrize("subnet", SUBNETS.values(), ids=SUBNETS.keys())
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN scratch", "post-LN with token types"])
def test_exported_model_computes_the_masked_subnet(norm_first, subnet):
    model = _model(norm_first)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = _inputs(model)
    small = export_subnet(model, subnet)
    assert not small.training
    torch.testing.assert_close(small(**inputs), _masked_logits(model, subnet, inputs), atol=1e-5, rtol=0)
    assert model.subnet == SubnetConfig()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("subnet", SUBNETS.values(), ids=SUBNETS.keys())
def test_exported_model_has_exactly_the_active_parameters(subnet, tmp_path):
    model = _model()
    small = export_subnet(model, subnet)
    model.set_subnet(subnet)
    assert small.encoder.num_parameters() == model.encoder.num_parameters(active_only=True)
    model.set_subnet(None)
    if subnet != SubnetConfig():
        atomic_save_safetensors(model.state_dict(), tmp_path / "full.safetensors")
        atomic_save_safetensors(small.state_dict(), tmp_path / "small.safetensors")
        assert (tmp_path / "small.safetensors").stat().st_size < (tmp_path / "full.safetensors").stat().st_size


def test_exported_config_lists_each_layer_and_keeps_the_rest():
    model = _model(dropout=0.3, attention_dropout=0.2)
    small = export_subnet(model, SUBNETS["per-layer, middle dropped"])
    config = small.encoder.config
    assert (config.layers, config.layer_heads, config.layer_ffn, config.head_dim) == (2, [4, 3], [32, 9], 4)
    assert (config.dropout, config.attention_dropout, small.head.dropout.p) == (0.3, 0.2, 0.2)
    assert {k: v for k, v in small.config_dict().items() if k != "encoder"} == {
        k: v for k, v in model.config_dict().items() if k != "encoder"
    }
    assert export_subnet(model.train(), SubnetConfig()).training  # the training mode is kept


def test_export_of_a_rewired_model_keeps_its_best_heads():
    model = _model(norm_first=False)
    torch.manual_seed(2)
    batches = [
        {
            "input_ids": torch.randint(1, VOCAB, (8, T)),
            "attention_mask": torch.ones(8, T, dtype=torch.bool),
            "labels": torch.randint(0, 3, (8,)),
        }
        for _ in range(2)
    ]
    rewire(model, importance(model, batches))
    subnet = SUBNETS["per-layer, middle dropped"]
    inputs = _inputs(model)
    small = export_subnet(model, subnet)
    torch.testing.assert_close(small(**inputs), _masked_logits(model, subnet, inputs), atol=1e-5, rtol=0)


def test_an_exported_model_exports_again():
    model = _model()
    small = export_subnet(model, SUBNETS["per-layer, middle dropped"])  # heads 4, 3; ffn 32, 9
    subnet = subnet_for(small.encoder.config, width=0.5, depth=0.5)
    assert subnet == SubnetConfig(layers=(0,), heads=(2, 2), ffn=(16, 4))  # of each layer's own size
    smaller = export_subnet(small, subnet)
    inputs = _inputs(small)
    torch.testing.assert_close(smaller(**inputs), _masked_logits(small, subnet, inputs), atol=1e-5, rtol=0)
    assert smaller.encoder.config.layer_heads == [2]


def test_rewiring_works_when_the_heads_are_narrower_than_the_model():
    model = _model(heads=3, head_dim=4)  # inner width 12, model width 16
    assert model.encoder.layers[0].attn.qkv.weight.shape == (36, 16)
    inputs = _inputs(model)
    before = model(**inputs)
    batches = [{**inputs, "labels": torch.tensor([0, 1, 2, 0])}]
    rewire(model, importance(model, batches))
    torch.testing.assert_close(model(**inputs), before, atol=1e-6, rtol=0)


def test_export_refuses_a_subnet_that_does_not_fit():
    with pytest.raises(ValueError, match="must be in"):
        export_subnet(_model(), SubnetConfig(heads=(5, 1, 1)))


# --- EncoderConfig with per-layer sizes ----------------------------------------------------


def test_encoder_config_round_trip_with_per_layer_sizes():
    config = EncoderConfig(
        vocab_size=VOCAB, dim=16, layers=2, heads=3, head_dim=4, layer_heads=(3, 1), layer_ffn=[8, 2]
    )
    assert config.layer_heads == [3, 1]  # tuples become lists, as JSON gives them back
    assert EncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert (config.heads_per_layer(), config.ffn_per_layer(), config.resolved_head_dim()) == ((3, 1), (8, 2), 4)


def test_an_old_encoder_config_without_the_new_keys_loads():
    old = {
        "vocab_size": VOCAB,
        "dim": 16,
        "layers": 2,
        "heads": 4,
        "ffn_dim": 32,
        "max_position": 16,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation": "gelu",
        "norm_first": True,
        "layer_norm_eps": 1e-5,
        "type_vocab_size": 0,
        "pad_id": 0,
    }
    config = EncoderConfig.from_dict(old)
    assert (config.head_dim, config.layer_heads, config.layer_ffn) == (None, None, None)
    assert config.heads_per_layer() == (4, 4) and config.resolved_head_dim() == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"layer_heads": [2]}, "layer_heads must be a list of 2 values"),
        ({"layer_ffn": [8, 0]}, "layer_ffn must be a list of 2 values"),
        ({"layer_heads": [2.0, 1]}, r"layer_heads must be list\[int\]"),
        ({"head_dim": 0}, "head_dim must be positive"),
        ({"head_dim": 4.0}, "head_dim must be int"),
        ({"dim": 10, "heads": 4}, "divisible"),
    ],
)
def test_encoder_config_refuses_bad_per_layer_sizes(overrides, message):
    with pytest.raises(ValueError, match=message):
        EncoderConfig(**{"vocab_size": VOCAB, "dim": 16, "layers": 2, "heads": 4, **overrides})


def test_a_head_dim_frees_dim_from_divisibility():
    config = EncoderConfig(vocab_size=VOCAB, dim=10, layers=1, heads=4, head_dim=3)
    assert config.resolved_head_dim() == 3


# --- Model directories ---------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    model = _model()
    folder = tmp_path / "model"
    folder.mkdir()
    texts = ["the flight was late", "great service thanks", "a meeting on tuesday"] * 5
    tokenizer = train_tokenizer(texts, vocab_size=VOCAB, min_frequency=1)
    save_tokenizer(tokenizer, folder / "tokenizer.json")
    atomic_write_json(folder / "labels.json", ["a", "b", "c"])
    atomic_save_safetensors(model.state_dict(), folder / "model.safetensors")
    atomic_write_json(
        folder / "model_config.json",
        {
            "format": MODEL_FORMAT,
            "attncoach_version": "0",
            "model": model.config_dict(),
            "max_length": 12,
            "elastic": {"widths": [0.25, 0.5, 1.0], "depths": [0.5, 1.0], "ffn_widths": None, "per_layer": False},
        },
    )
    return folder


def test_export_model_dir_writes_a_plain_smaller_model(model_dir, tmp_path):
    subnet = SUBNETS["per-layer, middle dropped"]
    summary = export_model_dir(model_dir, subnet, tmp_path / "small", "--subnet s.json")
    out = tmp_path / "small"
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.json",
        "model.safetensors",
        "model_config.json",
        "tokenizer.json",
    ]
    config = json.loads((out / "model_config.json").read_text())
    assert "elastic" not in config and config["max_length"] == 12 and config["format"] == MODEL_FORMAT
    assert config["exported_from"] == {
        "model": str(model_dir),
        "subnet": subnet.to_dict(),
        "parameters": summary.parameters,
        "source_parameters": summary.source_parameters,
        "named_by": "--subnet s.json",
    }
    assert summary.parameters < summary.source_parameters and summary.file_bytes < summary.source_file_bytes
    source, small = SavedClassifier.load(model_dir), SavedClassifier.load(out)
    assert small.space is None and small.labels == source.labels
    source.model.set_subnet(subnet)
    texts = ["great flight", "late again", "tuesday"]
    assert small.predict_proba(texts) == pytest.approx(source.predict_proba(texts), abs=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "small"]  # no temporary folder left


def test_export_model_dir_fills_an_empty_folder(model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    export_model_dir(model_dir, SubnetConfig(layers=(1,)), tmp_path / "empty")
    assert (tmp_path / "empty" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("model", "not empty"),
        ("model/model.safetensors/small", "which is a file"),
    ],
)
def test_export_model_dir_refuses_a_bad_out_dir(model_dir, tmp_path, out, message):
    with pytest.raises(AttncoachError, match=message):
        export_model_dir(model_dir, SubnetConfig(), tmp_path / out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_export_model_dir_makes_missing_parent_folders(model_dir, tmp_path):
    export_model_dir(model_dir, SubnetConfig(layers=(1,)), tmp_path / "models" / "v1" / "small")
    assert (tmp_path / "models" / "v1" / "small" / "model.safetensors").is_file()


def test_export_model_dir_leaves_nothing_when_the_subnet_does_not_fit(model_dir, tmp_path):
    with pytest.raises(AttncoachError, match="does not fit"):
        export_model_dir(model_dir, SubnetConfig(layers=(0, 7)), tmp_path / "small")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# --- int8 and ONNX model directories ---------------------------------------------------------


def test_an_int8_export_stores_int8_weights_and_embeddings_and_loads_like_any_model(model_dir, tmp_path):
    from safetensors import safe_open

    from attncoach.models.saved import FORMAT_VERSION, load_model

    subnet = SUBNETS["uniform half"]
    fp32 = export_model_dir(model_dir, subnet, tmp_path / "fp32")
    int8 = export_model_dir(model_dir, subnet, tmp_path / "int8", quantize="int8")
    assert int8.quantization == "int8" and int8.parameters == fp32.parameters
    assert int8.file_bytes < 0.6 * fp32.file_bytes  # dim 16: a scale per row of 16 and the header weigh in
    config = json.loads((tmp_path / "int8" / "model_config.json").read_text())
    assert config["quantization"] == "int8" and config["format_version"] == FORMAT_VERSION == 4
    with safe_open(tmp_path / "int8" / "model.safetensors", "pt") as weights:
        dtypes = {key: weights.get_tensor(key).dtype for key in weights.keys()}
    assert dtypes["encoder.embeddings.word.weight_int8"] == torch.int8
    assert (
        dtypes["encoder.layers.0.attn.qkv.weight_int8"] == torch.int8 and dtypes["head.out.weight_int8"] == torch.int8
    )
    assert not any(key.endswith(".weight") and "norm" not in key for key in dtypes)  # no float matrix left
    loaded, reference = load_model(tmp_path / "int8"), load_model(tmp_path / "fp32")
    assert loaded.quantization == "int8" and reference.quantization is None
    texts = ["great flight", "late again", "tuesday", "the meeting was great"]
    assert loaded.predict_proba(texts) == pytest.approx(reference.predict_proba(texts), abs=0.02)


def test_an_int8_model_directory_is_not_exported_again(model_dir, tmp_path):
    export_model_dir(model_dir, SubnetConfig(), tmp_path / "int8", quantize="int8")
    for options in ({"quantize": "int8"}, {}):
        with pytest.raises(AttncoachError, match="is already an int8 model: export from the float32 model"):
            export_model_dir(tmp_path / "int8", SubnetConfig(), tmp_path / "again", **options)
    with pytest.raises(AttncoachError, match="unknown quantization 'int4': choose int8"):
        export_model_dir(model_dir, SubnetConfig(), tmp_path / "int4", quantize="int4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8", "model"]


def test_an_onnx_export_runs_in_onnx_runtime_with_the_torch_model_s_answers(model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from attncoach.models.onnx_graph import OnnxModel
    from attncoach.models.saved import load_model, write_calibration

    write_calibration(model_dir, {"method": "temperature", "temperature": 2.0, "fitted_on": "val"})
    summary = export_model_dir(model_dir, SUBNETS["per-layer, middle dropped"], tmp_path / "onnx", onnx=True)
    out = tmp_path / "onnx"
    assert summary.onnx_file_bytes == (out / "model.onnx").stat().st_size
    assert json.loads((out / "model_config.json").read_text())["onnx"]["output"] == "logits"
    graph, torch_model = load_model(out, runtime="onnx"), load_model(out)
    assert isinstance(graph.model, OnnxModel) and graph.runtime == "onnx" and torch_model.runtime == "torch"
    assert graph.temperature == torch_model.temperature == 2.0  # the graph's probabilities are calibrated too
    texts = ["great flight", "late again", "tuesday", "the meeting was great"]
    assert graph.predict_proba(texts) == pytest.approx(torch_model.predict_proba(texts), abs=1e-5)


def test_every_export_keeps_the_source_s_calibration(model_dir, tmp_path):
    from attncoach.models.saved import load_model, write_calibration

    record = {"method": "temperature", "temperature": 0.5, "fitted_on": "val", "val_nll": [1.0, 0.9]}
    write_calibration(model_dir, record)
    source = load_model(model_dir)
    source.model.set_subnet(SUBNETS["uniform half"])
    texts = ["great flight", "late again", "tuesday"]
    for name, options in (("fp32", {}), ("int8", {"quantize": "int8"})):
        export_model_dir(model_dir, SUBNETS["uniform half"], tmp_path / name, **options)
        assert json.loads((tmp_path / name / "calibration.json").read_text()) == record
        exported = load_model(tmp_path / name)
        assert exported.temperature == 0.5
        tolerance = 1e-5 if name == "fp32" else 0.03
        assert exported.predict_proba(texts) == pytest.approx(source.predict_proba(texts), abs=tolerance)
    (model_dir / "calibration.json").write_text('{"method": "temperature", "temperature": -1}')
    with pytest.raises(AttncoachError, match="calibration.json is damaged"):
        export_model_dir(model_dir, SubnetConfig(), tmp_path / "damaged")
    assert not (tmp_path / "damaged").exists()


def test_the_onnx_runtime_needs_a_graph_and_a_known_runtime(model_dir):
    from attncoach.models.saved import load_model

    with pytest.raises(AttncoachError, match="has no ONNX graph \\(model.onnx\\): export one with"):
        load_model(model_dir, runtime="onnx")
    with pytest.raises(AttncoachError, match="unknown runtime str 'tensorrt': choose torch or onnx"):
        load_model(model_dir, runtime="tensorrt")
