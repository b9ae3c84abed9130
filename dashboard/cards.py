"""HTML views of items (pure functions of records): result rows, hover previews, tables.

A record is a dict with ``id, modality, label`` and optionally ``score``, ``preview``,
``group`` and, for a clip, ``transcript`` (what speech recognition heard; see :mod:`dashboard.access`). Labels are rendered as text by React, so HTML in a label is
shown, never interpreted.
"""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard import ids

THUMBNAIL_ROUTE = "/thumbnail/{id}"
MEDIA_ROUTE = "/media/{id}"


def thumbnail_url(item_id: int) -> str:
    return THUMBNAIL_ROUTE.format(id=int(item_id))


def media_url(item_id: int) -> str:
    return MEDIA_ROUTE.format(id=int(item_id))


def preview(record: dict[str, Any], size: int = 48) -> html.Img | html.Audio | None:
    """A thumbnail for an image item, a player for an audio item, nothing for text or items without files."""
    if record.get("preview") == "image":
        return html.Img(src=thumbnail_url(record["id"]), alt=record["label"], width=size, height=size, className="thumbnail")
    if record.get("preview") == "audio":
        return html.Audio(src=media_url(record["id"]), controls=True, preload="none", className="audio")
    return None


def transcript(record: dict[str, Any]) -> html.Q | None:
    """What was said in an audio item, quoted; nothing for other items or a clip with no words heard."""
    text = record.get("transcript")
    if record.get("modality") != "audio" or not isinstance(text, str) or not text.strip():
        return None
    return html.Q(text.strip(), className="transcript", title="transcript (speech recognition)")


def result_row(record: dict[str, Any]) -> html.Li:
    """One result: score, label (a button that selects the item), modality, preview."""
    parts: list[Any] = []
    if "score" in record:
        parts.append(html.Span(f"{record['score']:.3f}", className="score"))
    parts.append(html.Button(record["label"], id=ids.pick(record["id"]), className="pick", title=f"item {record['id']}: show its neighbours"))
    parts.append(html.Span(record["modality"], className=f"modality modality-{record['modality']}"))
    if record.get("group"):
        parts.append(html.Span(record["group"], className="group"))
    said = transcript(record)
    if said is not None:
        parts.append(said)
    media = preview(record)
    if media is not None:
        parts.append(media)
    return html.Li(parts, className="result", **{"data-item": str(record["id"])})


def result_list(records: list[dict[str, Any]], list_id: str | None = None) -> html.Ol:
    """Results best first, as an ordered list."""
    return html.Ol([result_row(record) for record in records], className="results", **({"id": list_id} if list_id else {}))


def hover_card(record: dict[str, Any]) -> html.Div:
    """Preview of the hovered point: label, modality and its image or sound."""
    children: list[Any] = [html.Strong(record["label"]), html.Span(f" · {record['modality']} · id {record['id']}")]
    said = transcript(record)
    if said is not None:
        children.append(html.Div(said))
    media = preview(record, size=96)
    if media is not None:
        children.append(html.Div(media))
    return html.Div(children, className="hover-card")


def items_table(records: list[dict[str, Any]], columns: tuple[str, ...] = ("id", "modality", "label", "group")) -> html.Table:
    """A plain table of item records (columns missing from every record are left out)."""
    shown = [column for column in columns if any(column in record for record in records)]
    header = html.Thead(html.Tr([html.Th(column) for column in shown]))
    body = html.Tbody([html.Tr([html.Td(str(record.get(column, ""))) for column in shown], **{"data-item": str(record["id"])}) for record in records])
    return html.Table([header, body], className="items")
