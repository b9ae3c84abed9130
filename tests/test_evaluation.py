"""The held-out evaluation report on a small dataset built by the project's own builders."""

from __future__ import annotations

import json


from embedspace.recipes.speech import VOICE_STYLES
from embedspace.recipes.encoder_evaluation import evaluate_emoji_model


def test_report_has_every_measure_and_saves_markdown_and_json(model, small_emoji_dataset, tmp_path):
    report = evaluate_emoji_model(model, small_emoji_dataset, progress=False, trained_designs=("openmoji", "noto", "twemoji"))
    metrics = report.metrics
    assert metrics["heldout_images"] > 0 and metrics["captions"] >= metrics["heldout_images"]
    for direction in ("image_to_caption", "caption_to_image"):
        scores = metrics[direction]
        assert 0 <= scores["R@1"] <= scores["R@5"] <= scores["R@10"] <= 1
    assert set(metrics["audio_to_caption"]) == set(VOICE_STYLES)  # every voice, the held-out one and the extra speakers too
    assert 0 <= metrics["subgroup_zero_shot"]["majority_baseline"] <= 1
    assert metrics["manner"]["words"] == metrics["heldout_images"]
    heard = metrics["transcript"]  # the default model fuses a Whisper transcript into its audio vectors
    assert heard["weight"] == model.config.audio.transcript_weight > 0 and heard["heldout_voice"]["clips"] == metrics["heldout_images"]
    assert set(heard["heldout_voice"]["acoustic"]) == set(heard["heldout_voice"]["fused"]) == {"R@1", "R@5"}
    assert 0 <= heard["manner_fused"]["manner_text_accuracy"] <= 1 and "fused with the transcript" in report.markdown
    assert "Target image→caption R@5" in report.markdown and "held-out voice" in report.markdown.lower()
    designs = metrics["image_to_caption_by_design"]  # the same concepts in the npm designs
    assert set(designs) == {"noto", "twemoji", "fluent"}
    for scores in designs.values():
        assert scores["train"]["images"] + scores["test"]["images"] > 0 and 0 <= scores["train"]["R@5"] <= 1
        assert sum(group["images"] for group in scores["train_by_group"].values()) == scores["train"]["images"]
    assert "drawn in the other designs" in report.markdown
    assert "| fluent (**left out of training**) |" in report.markdown and "design left out of training (fluent)" in report.markdown
    one = metrics["one_space"]  # the modality gap and the mixed-results check
    images = one["image_caption"]
    assert images["items"] == metrics["captions"] + sum(s["train"]["images"] + s["test"]["images"] for s in designs.values())
    assert images["matched"] > images["unmatched"] and one["clip_caption"]["matched"] > one["clip_caption"]["unmatched"]
    mixed = one["mixed_modalities"]
    assert 0 <= mixed["share"] <= 1 and mixed["words"] == 50 and mixed["pool"]["images"] == images["items"]
    assert "## One space" in report.markdown and "everyday words" in report.markdown
    report.save(tmp_path)
    assert json.loads((tmp_path / "evaluation.json").read_text()) == json.loads(json.dumps(metrics))
    assert (tmp_path / "evaluation.md").read_text() == report.markdown
