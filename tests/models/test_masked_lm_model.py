"""MaskedLanguageModel: the MLM head tied to the word embeddings, its config round trip, its model directory."""

from __future__ import annotations

import pytest
import torch

from attncoach.atomicfile import atomic_save_safetensors
from attncoach.errors import AttncoachError
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.masked_lm import MaskedLanguageModel
from attncoach.models.saved import SavedMaskedLM, load_model, model_config, write_model_config

CONFIG = EncoderConfig(vocab_size=40, dim=16, layers=2, heads=2, ffn_dim=32, max_position=12, dropout=0.0)


def test_the_output_layer_is_the_word_embedding_table():
    model = MaskedLanguageModel(CONFIG).eval()
    ids = torch.randint(5, 40, (2, 6))
    logits = model(ids)
    assert logits.shape == (2, 6, 40)
    hidden = model.encoder(ids)
    torch.testing.assert_close(logits, model.mlm_head(hidden, model.encoder.embeddings.word.weight))
    own = {name: p.shape for name, p in model.mlm_head.named_parameters()}
    assert own["bias"] == (40,) and all(len(shape) < 2 or shape[0] != 40 for shape in own.values())  # no own table
    logits[..., 7].sum().backward()  # the table learns as the output layer too: token 7's row gets gradient
    assert model.encoder.embeddings.word.weight.grad[7].abs().sum() > 0


def test_config_round_trip_and_sub_nets():
    model = MaskedLanguageModel(CONFIG)
    twin = MaskedLanguageModel.from_config_dict(model.config_dict())
    twin.load_state_dict(model.state_dict())
    ids = torch.randint(5, 40, (3, 5))
    model.eval(), twin.eval()
    torch.testing.assert_close(model(ids), twin(ids))
    model.set_subnet(SubnetConfig(layers=(1,), heads=(1, 1), ffn=(16, 16)))
    assert model(ids).shape == (3, 5, 40)
    with pytest.raises(ValueError, match="unknown MaskedLanguageModel config key"):
        MaskedLanguageModel.from_config_dict({**model.config_dict(), "num_labels": 3})


def _model_dir(tmp_path, model):
    from tokenizers import Tokenizer, models

    folder = tmp_path / "model"
    folder.mkdir()
    atomic_save_safetensors(model.state_dict(), folder / "model.safetensors")
    write_model_config(folder, model_config(model, 12, task="masked_lm"))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *map(str, range(35))])}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    return folder


def test_a_model_directory_loads_as_a_pretrained_encoder(tmp_path):
    model = MaskedLanguageModel(CONFIG).eval()
    loaded = load_model(_model_dir(tmp_path, model))
    assert isinstance(loaded, SavedMaskedLM) and loaded.task == "masked_lm" and loaded.max_length == 12
    ids = torch.randint(5, 40, (2, 4))
    torch.testing.assert_close(loaded.model(ids), model(ids))
    tokens, maps = loaded.attention("1 2 3")
    assert len(maps) == 2 and maps[0].shape[-1] == len(tokens)
    with pytest.raises(AttncoachError, match="pretrained encoder"):
        load_model(tmp_path / "model", runtime="onnx")


def test_the_backbone_of_a_masked_lm_model_is_its_encoder_with_the_head_kept_aside(tmp_path):
    from attncoach.models.pretrained import load_backbone

    model = MaskedLanguageModel(CONFIG)
    backbone = load_backbone(_model_dir(tmp_path, model))
    assert backbone.encoder_config == CONFIG and backbone.labels is None and backbone.head_state is None
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(backbone.encoder_state[key], value), key
    assert set(backbone.mlm_head_state) == set(model.mlm_head.state_dict())
    assert backbone.tokenizer.token_to_id("[MASK]") == 4
