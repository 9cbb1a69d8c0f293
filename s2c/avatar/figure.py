"""Drawing a ``Pose`` as a little character person in a tile of cols x rows cells.

Owns: the figure's shapes (a one-line face in a tiny tile, a head in a short one, a head with body
and arms in a large one), how pose moves and tilts them and how expressions look, the colours of
its parts per colour depth, and the ANSI bytes of a tile (``FigureRenderer``, row diff against
what it last emitted). Must not: read the clock (``t_ms`` is passed in: it only paces the talking
mouth), write to the terminal, know about the network or the camera.

Only printable ASCII is drawn, so the figure reads the same in every terminal and in
``--colors none``. Cells are taken as twice as tall as wide.

Shapes: eyes ``o`` (open), ``-`` (closed), ``.`` looking away; mouth ``-`` closed, ``\\_/`` (or
``u``) smiling, ``O`` / an open two-row mouth open, talking alternates open and closed every
``TALK_PERIOD_MS``; the head outline is an ellipse drawn with ``_ - / \\ |`` and turned by roll;
the face is moved by the pose's x/y within the tile and its features shift with yaw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .pose import MOUTH_OPEN, MOUTH_TALKING, Pose

TALK_PERIOD_MS = 180
COLOR_DEPTHS = ("truecolor", "256", "16", "none")
ROLES = ("head", "eye", "mouth", "body", "dim")
_RGB = {"head": (240, 200, 160), "eye": (255, 255, 255), "mouth": (230, 80, 80), "body": (110, 160, 240),
        "dim": (128, 128, 128)}
_C256 = {"head": 223, "eye": 231, "mouth": 167, "body": 75, "dim": 244}
_C16 = {"head": 93, "eye": 97, "mouth": 91, "body": 94, "dim": 90}
RESET = "\x1b[0m"


def role_sgr(role: str | None, colors: str) -> str:
    """The SGR that starts cells of ``role`` in a colour depth ("" for none)."""
    if colors == "none" or role is None:
        return ""
    if colors == "truecolor":
        r, g, b = _RGB[role]
        return f"\x1b[0;38;2;{r};{g};{b}m"
    if colors == "256":
        return f"\x1b[0;38;5;{_C256[role]}m"
    return f"\x1b[0;{_C16[role]}m"


@dataclass
class Figure:
    """A drawn figure: ``lines`` (``rows`` strings of exactly ``cols`` characters) and, per cell,
    the role of what is drawn there (None for background)."""

    lines: list[str]
    roles: list[list[str | None]]
    shape: str          # "line", "head" or "full"


class _Canvas:
    def __init__(self, cols: int, rows: int):
        self.cols, self.rows = cols, rows
        self.ch = [[" "] * cols for _ in range(rows)]
        self.role: list[list[str | None]] = [[None] * cols for _ in range(rows)]

    def put(self, r: int, c: int, ch: str, role: str) -> None:
        if 0 <= r < self.rows and 0 <= c < self.cols:
            self.ch[r][c] = ch
            self.role[r][c] = role

    def text(self, r: int, c: int, s: str, role: str) -> None:
        for i, ch in enumerate(s):
            self.put(r, c + i, ch, role)

    def figure(self, shape: str) -> Figure:
        return Figure(["".join(row) for row in self.ch], self.role, shape)


def _mouth_kind(pose: Pose, t_ms: int) -> str:
    if pose.mouth == MOUTH_OPEN:
        return "open"
    if pose.mouth == MOUTH_TALKING or pose.talking:
        return "talk_open" if (t_ms // TALK_PERIOD_MS) % 2 == 0 else "closed"
    return "smile" if pose.smile else "closed"


def _eye_chars(pose: Pose) -> tuple[str, str]:
    if pose.looking_away:
        return ".", "."
    return ("o" if pose.eye_left_open else "-"), ("o" if pose.eye_right_open else "-")


def _line_face(cv: _Canvas, pose: Pose, t_ms: int) -> None:
    el, er = _eye_chars(pose)
    m = {"open": "O", "talk_open": "o", "closed": "_", "smile": "u"}[_mouth_kind(pose, t_ms)]
    if pose.roll_deg > 12:
        lb, rb = "\\", "\\"
    elif pose.roll_deg < -12:
        lb, rb = "/", "/"
    else:
        lb, rb = "(", ")"
    face = f"{lb}{el}{m}{er}{rb}" if cv.cols >= 5 else f"{el}{m}{er}"[: cv.cols]
    if pose.looking_away:
        face = f"{lb}{el}{el} {rb}" if pose.yaw_deg <= 0 else f"{lb} {er}{er}{rb}"
        face = face[: cv.cols]
    c = int(round(pose.x * (cv.cols - len(face))))
    r = int(round(pose.y * (cv.rows - 1)))
    cv.text(max(0, min(cv.rows - 1, r)), max(0, min(cv.cols - len(face), c)), face,
            "head" if pose.face_found or pose.looking_away else "dim")


def _head(cv: _Canvas, pose: Pose, t_ms: int, hx: float, hy: float, semi_x: float, semi_y: float,
          role: str) -> None:
    """An elliptical head centred at (hx, hy) in cell units (semi-axes in columns and rows),
    turned by the pose's roll, with eyes and mouth."""
    th = math.radians(pose.roll_deg)
    ct, st = math.cos(th), math.sin(th)
    ax, ay = semi_x, semi_y * 2.0          # physical units: a row is two columns tall

    def local(px: float, py: float) -> tuple[float, float]:
        dx, dy = px - hx, (py - hy) * 2.0
        return (ct * dx + st * dy) / ax, (-st * dx + ct * dy) / ay     # rotate by -roll

    def screen(u: float, v: float) -> tuple[int, int]:
        lx, ly = u * ax, v * ay
        dx, dy = ct * lx - st * ly, st * lx + ct * ly
        return int(math.floor(hy + dy / 2.0)), int(math.floor(hx + dx))

    # the outline, one glyph thick: where each row's centre line crosses the ellipse (its steep
    # parts) and where each column's does (its flat parts); the glyph follows the tangent
    ia, ib = 1.0 / (ax * ax), 1.0 / (ay * ay)
    a_row = ct * ct * ia + st * st * ib          # quadratic in dx for a fixed dy, and vice versa
    a_col = st * st * ia + ct * ct * ib
    k_mix = 2.0 * ct * st * (ia - ib)

    def grad(dx: float, dy: float) -> tuple[float, float]:
        return 2 * a_row * dx + k_mix * dy, 2 * a_col * dy + k_mix * dx

    def glyph(dx: float, dy: float) -> str:
        gx, gy = grad(dx, dy)
        tx, ty = -gy, gx / 2.0                   # tangent in cell units (a row is 2 units)
        ang = math.degrees(math.atan2(abs(ty), abs(tx)))
        if ang > 62:
            return "|"
        if ang < 24:
            return "_" if gy < 0 else "-"        # top / bottom of the head
        return "/" if (tx > 0) != (ty > 0) else "\\"

    def roots(a: float, b: float, c: float) -> list[float]:
        disc = b * b - 4 * a * c
        if disc < 0:
            return []
        q = math.sqrt(disc)
        return [(-b - q) / (2 * a), (-b + q) / (2 * a)]

    for r in range(cv.rows):
        dy = (r + 0.5 - hy) * 2.0
        for dx in roots(a_row, k_mix * dy, a_col * dy * dy - 1.0):
            gx, gy = grad(dx, dy)
            if abs(gx) >= 2.0 * abs(gy):          # steep (< 1 column per row): the row owns it
                cv.put(r, int(math.floor(hx + dx)), glyph(dx, dy), role)
    for c in range(cv.cols):
        dx = c + 0.5 - hx
        for dy in roots(a_col, k_mix * dx, a_row * dx * dx - 1.0):
            gx, gy = grad(dx, dy)
            if abs(gx) < 2.0 * abs(gy):           # flat (< 1 row per column): the column owns it
                cv.put(int(math.floor(hy + dy / 2.0)), c, glyph(dx, dy), role)
    # features, shifted sideways by yaw (and far sideways when looking away)
    shift = max(-0.45, min(0.45, pose.yaw_deg / 90.0 * 0.6))
    if pose.looking_away:
        shift = 0.3 if pose.yaw_deg > 0 else -0.3
    el, er = _eye_chars(pose)
    feat = "dim" if role == "dim" else None
    eye_v = -0.22
    for u, ch in ((-0.42 + shift, el), (0.42 + shift, er)):
        r, c = screen(u, eye_v)
        cv.put(r, c, ch, feat or "eye")
    kind = _mouth_kind(pose, t_ms)
    if pose.looking_away:
        return
    mw = max(1, int(round(semi_x * 0.8)))        # mouth width in columns
    mv = 0.45 if semi_y >= 2.5 else 0.40
    if kind == "open" and semi_y >= 3.5 and mw >= 3:
        rows_txt = [("/" + " " * (mw - 2) + "\\", mv - 0.12), ("\\" + "_" * (mw - 2) + "/", mv + 0.14)]
    elif kind == "open" or (kind == "talk_open" and mw < 3):
        rows_txt = [("O" if kind == "open" else "o", mv)]
    elif kind == "talk_open":
        rows_txt = [("(" + "_" * (mw - 2) + ")", mv)]
    elif kind == "smile":
        rows_txt = [("\\" + "_" * (mw - 2) + "/" if mw >= 3 else "u", mv)]
    else:
        rows_txt = [("-" * mw, mv)]
    for txt, v in rows_txt:
        n = len(txt)
        for i, ch in enumerate(txt):
            u = shift + ((i - (n - 1) / 2.0) / ax)
            r, c = screen(u, v)
            cv.put(r, c, ch, feat or "mouth")


def _body(cv: _Canvas, top: int, cx: int, half: int, role: str, pose: Pose, t_ms: int) -> None:
    """Shoulders at row ``top`` centred at column ``cx``, torso to the bottom, arms at the sides."""
    rows = cv.rows
    if top >= rows:
        return
    cv.put(top - 1, cx, "|", role)                    # neck (overwrites the chin if it must)
    cv.text(top, cx - half, "." + "-" * (2 * half - 1) + ".", role)
    for r in range(top + 1, rows):
        cv.put(r, cx - half, "|", role)
        cv.put(r, cx + half, "|", role)
    if rows - 1 > top + 1:
        cv.text(rows - 1, cx - half + 1, "_" * (2 * half - 1), role)
    # arms hang from the shoulders; while talking the right hand gestures now and then
    wave = (pose.talking or pose.mouth == MOUTH_TALKING) and (t_ms // (TALK_PERIOD_MS * 3)) % 2 == 0
    arm_rows = max(1, min(3, rows - top - 1))
    for i in range(arm_rows):
        cv.put(top + 1 + i, cx - half - 1 - i, "/", role)
        if not wave:
            cv.put(top + 1 + i, cx + half + 1 + i, "\\", role)
    if wave:
        cv.put(top, cx + half + 1, "/", role)
        cv.put(top - 1, cx + half + 2, "/", role)


def render_figure(pose: Pose, cols: int, rows: int, t_ms: int = 0) -> Figure:
    """The figure of ``pose`` in a cols x rows tile (see the module docstring for the shapes)."""
    if cols < 1 or rows < 1:
        raise ConfigError(f"tile of {cols}x{rows} cells is too small")
    cv = _Canvas(cols, rows)
    role = "head" if (pose.face_found or pose.looking_away) else "dim"
    if rows < 4 or cols < 9:
        _line_face(cv, pose, t_ms)
        return cv.figure("line")
    full = rows >= 7 and cols >= 14
    size_k = max(0.75, min(1.3, pose.size / 0.3)) if pose.face_found or pose.looking_away else 1.0
    if full:
        semi_y = max(1.5, min((rows - 3) / 2.0, rows * 0.27 * size_k))
    else:
        semi_y = max(1.0, min((rows - 0.5) / 2.0, rows * 0.45 * size_k))
    semi_x = min(semi_y * 1.8, cols / 2.0 - 1.5)
    body_half = max(2, int(round(semi_x * 0.9))) if full else 0
    margin_x = max(semi_x + 1, body_half + 4 if full else 0)
    hx = margin_x + pose.x * max(0.0, cols - 2 * margin_x)
    if full:
        # the head rides over the body; vertical motion is a nod of about a row
        hy = semi_y + 0.5 + (pose.y - 0.45) * 2.0
        hy = max(semi_y + 0.2, min(rows - 3 - semi_y, hy))
    else:
        span = max(0.0, rows - 2 * semi_y - 0.4)
        hy = semi_y + 0.2 + pose.y * span
    _head(cv, pose, t_ms, hx, hy, semi_x, semi_y, role)
    if full:
        chin = max((r for r in range(rows) if any(x is not None for x in cv.role[r])), default=0)
        top = chin + 2 if chin + 4 <= rows else chin + 1
        _body(cv, min(top, rows - 2), int(round(hx)), body_half, "body" if role != "dim" else "dim", pose, t_ms)
    return cv.figure("full" if full else "head")


def figure_rows_ansi(fig: Figure, row: int, col: int, colors: str, only_rows=None) -> str:
    """ANSI text that draws ``fig`` with its top-left cell at 0-based (row, col): a cursor move
    per row, an SGR only where the role changes (none at all for ``colors='none'``)."""
    if colors not in COLOR_DEPTHS:
        raise ConfigError(f"colour depth {colors!r} is not one of: {', '.join(COLOR_DEPTHS)}")
    out = []
    for r, line in enumerate(fig.lines):
        if only_rows is not None and r not in only_rows:
            continue
        out.append(f"\x1b[{row + r + 1};{col + 1}H")
        cur = object()
        for ch, role in zip(line, fig.roles[r]):
            if colors != "none" and role != cur:
                out.append(role_sgr(role, colors) if role is not None else RESET)
                cur = role
            out.append(ch)
        if colors != "none":
            out.append(RESET)
    return "".join(out)


class FigureRenderer:
    """ANSI bytes that bring one cols x rows tile from what it last emitted to a pose's figure;
    the avatar's counterpart of ``s2c.render.Renderer`` (same ``frame`` / ``reset`` / ``resize``,
    ``origin`` = 0-based (row, col) of the tile's top-left cell). Only changed rows are redrawn."""

    def __init__(self, cols: int, rows: int, colors: str = "truecolor", *, origin: tuple[int, int] = (0, 0)):
        if colors not in COLOR_DEPTHS:
            raise ConfigError(f"colour depth {colors!r} is not one of: {', '.join(COLOR_DEPTHS)}")
        self.colors = colors
        self.origin = origin
        self.resize(cols, rows)

    def resize(self, cols: int, rows: int, origin: tuple[int, int] | None = None) -> None:
        if cols < 1 or rows < 1:
            raise ConfigError(f"tile of {cols}x{rows} cells is too small")
        self.cols, self.rows = cols, rows
        if origin is not None:
            self.origin = origin
        self.reset()

    def reset(self) -> None:
        """Forget what is on screen: the next frame is a full draw."""
        self._last: Figure | None = None

    def frame(self, pose: Pose, t_ms: int = 0) -> bytes:
        fig = render_figure(pose, self.cols, self.rows, t_ms)
        last = self._last
        if last is None:
            rows = None
        else:
            rows = {r for r in range(self.rows) if fig.lines[r] != last.lines[r] or fig.roles[r] != last.roles[r]}
            if not rows:
                return b""
        self._last = fig
        return figure_rows_ansi(fig, self.origin[0], self.origin[1], self.colors, rows).encode("ascii")
