"""Tests for the ViT image classifier: patch embedding, sub-nets, export slicing, int8 and ONNX."""

import pytest
import torch

from attncoach.elastic.export import export_subnet
from attncoach.elastic.space import subnet_for
from attncoach.models.encoder import EncoderConfig, SubnetConfig
from attncoach.models.image import ImageClassifier, PatchEmbeddings, patch_tokens
from attncoach.models.quantized import int8_skeleton, quantize_int8

LABELS = 5


def tiny_vit(
    pooling: str = "cls", channels: int = 1, size: tuple[int, int] = (8, 12), patch: int = 4
) -> ImageClassifier:
    torch.manual_seed(0)
    tokens = patch_tokens(size, patch, cls_token=pooling == "cls")
    config = EncoderConfig(vocab_size=1, dim=16, layers=3, heads=4, ffn_dim=32, max_position=tokens)
    return ImageClassifier(config, size, channels, patch, LABELS, pooling=pooling).eval()


@pytest.mark.parametrize("pooling, tokens", [("cls", 7), ("mean", 6), ("max", 6)])
def test_logits_and_hidden_shapes(pooling, tokens):
    model = tiny_vit(pooling, channels=3)
    images = torch.rand(4, 3, 8, 12)
    assert model(images).shape == (4, LABELS)
    assert model.encoder(images).shape == (4, tokens, 16)  # 2 x 3 patches (+ [CLS])
    assert model.patches.token_names()[: 1 + (pooling == "cls")][-1] == "r0c0"


def test_patches_are_cut_in_reading_order():
    embed = PatchEmbeddings((4, 4), 1, 2, dim=4, cls_token=False).eval()
    with torch.no_grad():
        embed.projection.weight.zero_()
        embed.projection.weight[0, 0] = 1.0  # feature 0 = the patch's top-left pixel
        embed.projection.bias.zero_()
    embed.norm = torch.nn.Identity()
    embed.position.data.zero_()
    image = torch.arange(16.0).view(1, 1, 4, 4)
    seen = embed(image)[0, :, 0].tolist()
    assert seen == [0.0, 2.0, 8.0, 10.0]  # patches r0c0, r0c1, r1c0, r1c1


def test_wrong_image_shape_and_patch_size_are_refused():
    model = tiny_vit()
    with pytest.raises(ValueError, match=r"images must be \(B, 1, 8, 12\)"):
        model(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="must divide"):
        patch_tokens((8, 12), 5, cls_token=True)
    config = EncoderConfig(vocab_size=1, dim=16, layers=1, heads=2, ffn_dim=32, max_position=99)
    with pytest.raises(ValueError, match="max_position must be the 7 tokens"):
        ImageClassifier(config, (8, 12), 1, 4, LABELS)


def test_config_round_trip_rebuilds_the_same_model():
    model = tiny_vit("mean", channels=3)
    twin = ImageClassifier.from_config_dict(model.config_dict()).eval()
    twin.load_state_dict(model.state_dict())
    images = torch.rand(2, 3, 8, 12)
    torch.testing.assert_close(twin(images), model(images))
    with pytest.raises(ValueError, match="unknown ImageClassifier config key 'colour'"):
        ImageClassifier.from_config_dict({**model.config_dict(), "colour": True})


def test_subnet_switching_changes_outputs_and_restores_them():
    model = tiny_vit()
    images = torch.rand(3, 1, 8, 12)
    full = model(images)
    model.set_subnet(SubnetConfig(layers=(0, 2), heads=(2, 4, 1), ffn=(16, 32, 8)))
    small = model(images)
    assert small.shape == full.shape and not torch.allclose(small, full)
    assert model.encoder.num_parameters(active_only=True) < model.encoder.num_parameters()
    model.set_subnet(None)
    torch.testing.assert_close(model(images), full)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_exported_subnet_computes_what_the_masked_supernet_does(pooling):
    model = tiny_vit(pooling)
    images = torch.rand(3, 1, 8, 12)
    subnet = subnet_for(model.encoder.config, 0.5, 0.67)
    model.set_subnet(subnet)
    expected = model(images)
    small = export_subnet(model, subnet)
    assert isinstance(small, ImageClassifier) and small.encoder.config.layers == len(subnet.layers)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(small(images), expected, rtol=1e-5, atol=1e-5)


def test_int8_copy_stays_close_and_loads_into_its_skeleton():
    model = tiny_vit()
    images = torch.rand(4, 1, 8, 12)
    int8 = quantize_int8(model)
    assert (int8(images) - model(images)).abs().max() < 0.1
    skeleton = int8_skeleton(ImageClassifier.from_config_dict(model.config_dict()))
    skeleton.load_state_dict(int8.state_dict())
    torch.testing.assert_close(skeleton.eval()(images), int8(images))


def test_onnx_graph_takes_pixels_at_any_batch_size(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from attncoach.models.onnx_graph import OnnxModel, export_onnx

    model = tiny_vit()
    record = export_onnx(model, "image_classification", tmp_path / "model.onnx")
    assert record["inputs"] == ["pixels"] and record["output"] == "logits"
    graph = OnnxModel(tmp_path / "model.onnx", "image_classification")
    for batch in (1, 5):
        images = torch.rand(batch, 1, 8, 12)
        torch.testing.assert_close(graph(images), model(images), rtol=1e-4, atol=1e-4)
