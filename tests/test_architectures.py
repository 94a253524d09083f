import pytest
import torch

from models.architectures import last_conv_layer
from models.registry import build_model, list_architectures, register_model
from models.sanity import overfit_one_batch
from models.errors import ModelNotFound

EXPECTED = {  # architecture -> (parameters, channels of the last feature map)
    "simple_cnn": (2_626_922, 384),
    "resnet18": (11_171_266, 512),
    "efficientnet_lite0": (3_372_994, 1280),
    "efficientnet_lite1": (4_137_666, 1280),
    "efficientnet_lite2": (4_813_058, 1280),
}


def test_registry_lists_every_architecture():
    assert list_architectures() == sorted(EXPECTED)


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_shapes_and_parameter_counts(arch):
    model = build_model(arch).eval()
    params, channels = EXPECTED[arch]
    assert sum(p.numel() for p in model.parameters()) == params
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        fmap = model.forward_features(x)
        logits = model(x)
    assert fmap.shape == (2, channels, 7, 7)  # 224 / 32: global average pooling, no giant flatten
    assert logits.shape == (2, 2)
    assert last_conv_layer(model) is model.features


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_any_input_size_works_thanks_to_global_pooling(arch):
    with torch.no_grad():
        assert build_model(arch).eval()(torch.randn(1, 1, 96, 128)).shape == (1, 2)


def test_simple_cnn_convs_keep_size():
    model = build_model("simple_cnn")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert any(isinstance(m, torch.nn.Dropout2d) for m in model.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == len(convs)


@pytest.mark.parametrize("arch", ["simple_cnn", "resnet18"])
def test_overfit_one_batch(arch):
    result = overfit_one_batch(arch, image_size=48, steps=40)
    assert result["passed"], result
    assert result["final_loss"] < 0.05 < result["first_loss"]


@pytest.mark.slow
def test_overfit_one_batch_efficientnet():
    result = overfit_one_batch("efficientnet_lite0", image_size=48, steps=40)
    assert result["passed"], result


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_pretrained_efficientnet_keeps_imagenet_features(variant):
    """The grayscale stem fold is exact: on a gray image replicated to RGB, the RGB network's stem and
    ours agree away from the border (padding differs: zero means ImageNet's mean there, gray 0.5 here)."""
    import timm

    from models.architectures.efficientnet import imagenet_state_dict
    from tests.synth import chest_like

    rgb_net = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    rgb_net.load_state_dict(imagenet_state_dict(rgb_net, variant))
    rgb_net.eval()
    gray_net = build_model(f"efficientnet_{variant}", pretrained=True).eval()
    g = torch.from_numpy(chest_like(224, 224, seed=0)).float().view(1, 1, 224, 224) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        rgb_stem = rgb_net.bn1(rgb_net.conv_stem((g.repeat(1, 3, 1, 1) - mean) / std))
        gray_stem = gray_net.features.bn1(gray_net.features.conv_stem((g - 0.5) / 0.25))
        a = rgb_net.forward_features((g.repeat(1, 3, 1, 1) - mean) / std)
        b = gray_net.forward_features((g - 0.5) / 0.25)
    assert rgb_stem.shape == gray_stem.shape == (1, 32, 112, 112)
    assert torch.allclose(rgb_stem[..., 1:-1, 1:-1], gray_stem[..., 1:-1, 1:-1], atol=1e-4)
    assert (a - b).abs().mean() < 0.15 * a.abs().mean()  # only the border's influence remains downstream


def test_unknown_architecture_and_duplicate_registration():
    with pytest.raises(ModelNotFound, match="unknown architecture 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda **_: None)
    with pytest.raises(ValueError, match="no pretrained"):
        build_model("simple_cnn", pretrained=True)
