"""The U-Net and the step / particle embeddings."""

from __future__ import annotations

import pytest
import torch

from calosim.nn.embeddings import ConditionEmbedding, TimeEmbedding, sinusoidal_embedding
from calosim.nn.unet import ConditionalUNet, UNet, pooled_features


def test_sinusoidal_embedding_distinguishes_steps() -> None:
    embedding = sinusoidal_embedding(torch.tensor([0, 1, 500]), 9)
    assert embedding.shape == (3, 9)
    assert torch.equal(embedding[0, :4], torch.ones(4))  # cos(0)
    assert not torch.allclose(embedding[1], embedding[2])
    assert TimeEmbedding(16)(torch.tensor([3, 4])).shape == (2, 16)


def test_condition_embedding_null_rows() -> None:
    torch.manual_seed(0)
    embed = ConditionEmbedding(9, 8)
    with torch.no_grad():
        embed.null.fill_(0.5)
    conditions = torch.randn(4, 9)
    drop = torch.tensor([True, False, True, False])
    out = embed(conditions, drop)
    assert torch.equal(out[0], torch.full((8,), 0.5)) and torch.equal(out[2], out[0])
    assert torch.allclose(out[1], embed(conditions)[1])
    assert torch.equal(embed.null_embedding(3), torch.full((3, 8), 0.5))


def test_unet_shapes_and_split_into_encoder_and_decoder() -> None:
    torch.manual_seed(0)
    unet = UNet(1, 2, (8, 16, 16), blocks=2, attention=(False, False, True), emb_dim=12, heads=2)
    with torch.no_grad():  # the output layer starts at zero; make it say something
        unet.head[-1].weight.normal_()
    x, emb = torch.randn(3, 1, 48, 48), torch.randn(3, 12)
    features = unet.encode(x, emb)
    assert features[0].shape == (3, 8, 48, 48) and features[-1].shape == (3, 16, 12, 12)
    out = unet(x, emb)
    assert out.shape == (3, 2, 48, 48)
    assert torch.equal(out, unet.decode(features, emb))
    assert not torch.allclose(out, unet(x, emb + 1.0))
    assert pooled_features(features).shape == (3, sum(f.shape[1] for f in features))


def test_unet_refuses_inconsistent_levels() -> None:
    with pytest.raises(ValueError):
        UNet(1, 1, (8, 16), attention=(True,))
    with pytest.raises(ValueError):
        UNet(1, 1, (8,), blocks=0)


def test_conditional_unet_keeps_the_particle_out_of_the_encoder_when_asked() -> None:
    torch.manual_seed(0)
    net = ConditionalUNet((8, 16), attention=(False, False), n_attributes=9,
                          condition_in_encoder=False)
    steps = torch.tensor([5, 5])
    conditions = torch.randn(2, 9)
    encoder_emb, decoder_emb = net.embed(steps, conditions)
    assert torch.equal(encoder_emb, net.time_embedding(steps))
    assert not torch.equal(decoder_emb, encoder_emb)
    x = torch.randn(2, 1, 48, 48)
    out = net(x, steps, conditions)
    assert out.shape == (2, 1, 48, 48)
    plain = ConditionalUNet((8, 16), attention=(False, False))
    first, second = plain.embed(steps, conditions)
    assert torch.equal(first, second)
