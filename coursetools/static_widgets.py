"""Replace the live widgets of an executed notebook by a static snapshot of their last state.

A widget needs a kernel to respond, and the widget JavaScript that renders it outside JupyterLab comes from a CDN.
For slides and a site that open offline we draw each widget as plain HTML instead, from the state that nbclient
stored in ``nb.metadata.widgets``: sliders as disabled range inputs with their value, menus and toggle buttons
with their selection, HTML widgets as their HTML, Image widgets as their picture (nbclient keeps an Image's bytes
beside its state, base64-encoded), Output widgets as their outputs, boxes as
flex rows and columns. Hidden children (``layout.display == "none"``) stay hidden. No script is involved.
"""
from __future__ import annotations

import html
import json

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
NOTE = "A snapshot of the widget. Run the notebook in JupyterLab to move its controls."
_SLIDERS = {"FloatSliderModel", "IntSliderModel", "FloatLogSliderModel"}
_RANGES = {"FloatRangeSliderModel", "IntRangeSliderModel"}
_SELECTIONS = {"DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel", "SelectionSliderModel"}
_TEXTS = {"TextModel", "FloatTextModel", "IntTextModel", "BoundedFloatTextModel", "BoundedIntTextModel",
          "TextareaModel", "LabelModel"}


class _Renderer:
    def __init__(self, state: dict):
        self.state = state
        self.controls = 0  # controls drawn (sliders, menus, buttons...): a progress bar alone has none

    def entry(self, ref) -> dict | None:
        key = ref[len("IPY_MODEL_"):] if isinstance(ref, str) and ref.startswith("IPY_MODEL_") else ref
        return self.state.get(key)

    def model(self, ref) -> dict | None:
        entry = self.entry(ref)
        return entry["state"] if entry else None

    def image(self, ref, s: dict) -> str:
        """An Image widget's picture: its ``value`` is a binary buffer, stored as base64 beside the state."""
        buffers = (self.entry(ref) or {}).get("buffers", [])
        data = next((b.get("data") for b in buffers if b.get("path") == ["value"]), None) or s.get("value")
        if not isinstance(data, str) or not data:
            return ""
        fmt = s.get("format", "png")
        mime = "image/svg+xml" if fmt == "svg+xml" else f"image/{fmt}"
        return f"<img src='data:{mime};base64,{data.strip()}' style='max-width:100%' alt='widget figure'>"

    def hidden(self, s: dict) -> bool:
        layout = self.model(s.get("layout")) or {}
        return layout.get("display") == "none" or layout.get("visibility") == "hidden"

    def render(self, ref, depth: int = 0) -> str:
        s = self.model(ref)
        if s is None or depth > 50:
            return ""
        if self.hidden(s):
            return ""
        name = s.get("_model_name", "")
        if name in _SLIDERS | _RANGES | _SELECTIONS | _TEXTS | {"CheckboxModel", "ToggleButtonModel", "ButtonModel"}:
            self.controls += name != "LabelModel"
        label = s.get("description", "")
        lab = (f"<span style='min-width:6em;display:inline-block;text-align:right;margin-right:6px'>"
               f"{html.escape(label)}</span>" if label else "")
        if name in ("VBoxModel", "BoxModel", "GridBoxModel"):
            return self._box(s, "column", depth)
        if name == "HBoxModel":
            return self._box(s, "row", depth)
        if name in ("AccordionModel", "TabModel", "StackModel"):
            return self._box(s, "column", depth)
        if name in _SLIDERS:
            value, fmt = s.get("value"), s.get("readout_format", ".2f")
            shown = _fmt(value, fmt)
            if name == "FloatLogSliderModel":
                shown = _fmt(s.get("base", 10) ** value if value is not None else None, fmt)
            return (f"<div style='display:flex;align-items:center;margin:2px 8px 2px 0'>{lab}"
                    f"<input type='range' disabled min='{s.get('min')}' max='{s.get('max')}' "
                    f"step='{s.get('step') or 'any'}' value='{value}' style='width:160px'>"
                    f"<span style='margin-left:6px;font-family:monospace'>{html.escape(shown)}</span></div>")
        if name in _RANGES:
            lo, hi = (s.get("value") or [None, None])[:2]
            return f"<div style='margin:2px 8px 2px 0'>{lab}<code>[{lo}, {hi}]</code></div>"
        if name in _SELECTIONS:
            labels, index = s.get("_options_labels", []), s.get("index")
            chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
            if name == "ToggleButtonsModel":
                buttons = "".join(
                    f"<span style='display:inline-block;padding:2px 10px;margin-right:2px;border:1px solid #bbb;"
                    f"{'background:#ddd;font-weight:bold' if i == index else 'background:#f7f7f7'}'>"
                    f"{html.escape(str(t))}</span>" for i, t in enumerate(labels))
                return f"<div style='margin:2px 8px 2px 0'>{lab}{buttons}</div>"
            return (f"<div style='margin:2px 8px 2px 0'>{lab}<select disabled style='color:inherit;font:inherit'>"
                    f"<option selected>{html.escape(str(chosen))}</option></select></div>")
        if name in ("CheckboxModel", "ToggleButtonModel"):
            mark = "☑" if s.get("value") else "☐"
            return f"<div style='margin:2px 8px 2px 0'>{mark} {html.escape(label)}</div>"
        if name == "ButtonModel":
            return (f"<div style='margin:2px 8px 2px 0'><button disabled>{html.escape(label or '')}</button>"
                    f"</div>")
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div style='margin:2px 0'>{lab}{s.get('value', '')}</div>"
        if name in _TEXTS:
            return f"<div style='margin:2px 8px 2px 0'>{lab}<code>{html.escape(str(s.get('value', '')))}</code></div>"
        if name == "ImageModel":
            return self.image(ref, s)
        if name == "OutputModel":
            return "".join(_output_html(o) for o in s.get("outputs", []))
        if name in ("ProgressModel", "FloatProgressModel", "IntProgressModel"):
            return (f"<div>{lab}<progress value='{s.get('value')}' max='{s.get('max')}'></progress></div>")
        return f"<div style='color:#888'>[{html.escape(name or 'widget')}]</div>"

    def _box(self, s: dict, direction: str, depth: int) -> str:
        inner = "".join(self.render(c, depth + 1) for c in s.get("children", []))
        wrap = "flex-wrap:wrap;align-items:center;" if direction == "row" else ""
        return f"<div style='display:flex;flex-direction:{direction};{wrap}'>{inner}</div>"


def _fmt(value, fmt: str) -> str:
    try:
        return format(value, fmt.replace("%", "") or "g")
    except (TypeError, ValueError):
        return str(value)


def _output_html(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return f"<pre style='margin:0'>{html.escape(out.get('text', ''))}</pre>"
    if kind == "error":
        text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
        return f"<pre style='color:#b00'>{html.escape(text)}</pre>"
    data = out.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            b64 = data[mime] if isinstance(data[mime], str) else "".join(data[mime])
            return f"<img src='data:{mime};base64,{b64.strip()}' style='max-width:100%' alt='widget figure'>"
    if "image/svg+xml" in data:
        return "".join(data["image/svg+xml"])
    if "text/html" in data:
        return "".join(data["text/html"])
    if "text/plain" in data:
        return f"<pre style='margin:0'>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


def snapshot_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace every widget view in ``nb``'s outputs by static HTML, in place; drop the widget state. Returns the
    number of widgets replaced. Widget views whose state was not stored keep their text fallback."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    renderer = _Renderer(state)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            view = data[WIDGET_VIEW]
            view = json.loads(view) if isinstance(view, str) else view
            renderer.controls = 0
            body = renderer.render(view.get("model_id"))
            del data[WIDGET_VIEW]
            if not body:
                continue
            if renderer.controls:  # an interactive widget: framed, with a word on where it comes alive
                data["text/html"] = (f"<div class='flows-widget-snapshot' style='border:1px solid #ddd;padding:6px;"
                                     f"border-radius:4px'>{body}<div style='color:#777;font-size:85%;"
                                     f"margin-top:4px'>{NOTE}</div></div>")
            else:  # e.g. a finished progress bar: just as it ended
                data["text/html"] = f"<div class='flows-widget-output'>{body}</div>"
            count += 1
    nb.metadata.pop("widgets", None)
    return count
