"""A tiny VT100 screen emulator, enough to read SIPp's curses screen.

SIPp draws its screen with ncurses (cursor addressing, relative moves, scroll regions), so
the byte stream has to be replayed onto a character grid before it can be read as text.
Only what ncurses emits for TERM=vt100 is implemented; everything else is ignored.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\x1b\[([0-9;?]*)([@A-Za-z])"   # CSI sequence
    r"|\x1b[()*+][0-9A-Za-z]"         # charset designation
    r"|\x1b[=>78DEMc]"                # keypad modes, save/restore, index, reverse index, reset
    r"|[\x00-\x1f\x7f]"               # one control character
    r"|[^\x00-\x1f\x7f\x1b]+"         # printable run
)


class Terminal:
    """A rows x cols character grid fed with terminal output."""

    def __init__(self, rows: int = 100, cols: int = 120) -> None:
        self.rows = rows
        self.cols = cols
        self.reset()

    def reset(self) -> None:
        self.grid = [[" "] * self.cols for _ in range(self.rows)]
        self.y = self.x = 0
        self.top, self.bottom = 0, self.rows - 1
        self.saved = (0, 0)

    # -- helpers -------------------------------------------------------------------------
    def _blank(self) -> list[str]:
        return [" "] * self.cols

    def _index(self) -> None:
        """Line feed: down one row, scrolling the scroll region at its bottom."""
        if self.y == self.bottom:
            del self.grid[self.top]
            self.grid.insert(self.bottom, self._blank())
        elif self.y < self.rows - 1:
            self.y += 1

    def _reverse_index(self) -> None:
        if self.y == self.top:
            del self.grid[self.bottom]
            self.grid.insert(self.top, self._blank())
        elif self.y > 0:
            self.y -= 1

    def _clamp(self) -> None:
        self.y = min(max(self.y, 0), self.rows - 1)
        self.x = min(max(self.x, 0), self.cols - 1)

    # -- input ---------------------------------------------------------------------------
    def feed(self, data: str) -> None:
        for match in _TOKEN.finditer(data):
            token = match.group(0)
            if match.group(2) is not None:
                self._csi(match.group(1), match.group(2))
            elif token[0] == "\x1b":
                self._escape(token)
            elif len(token) == 1 and (token < " " or token == "\x7f"):
                self._control(token)
            else:
                self._print(token)

    def _print(self, text: str) -> None:
        for ch in text:
            if self.x >= self.cols:  # auto-wrap
                self.x = 0
                self._index()
            self.grid[self.y][self.x] = ch
            self.x += 1

    def _control(self, ch: str) -> None:
        if ch == "\n":
            self._index()
        elif ch == "\r":
            self.x = 0
        elif ch == "\b":
            self.x = max(self.x - 1, 0)
        elif ch == "\t":
            self.x = min((self.x // 8 + 1) * 8, self.cols - 1)
        # bell, shift in/out and the rest change nothing we read

    def _escape(self, token: str) -> None:
        if token == "\x1bD":
            self._index()
        elif token == "\x1bE":
            self._index()
            self.x = 0
        elif token == "\x1bM":
            self._reverse_index()
        elif token == "\x1b7":
            self.saved = (self.y, self.x)
        elif token == "\x1b8":
            self.y, self.x = self.saved
        elif token == "\x1bc":
            self.reset()

    def _csi(self, raw: str, final: str) -> None:
        if raw.startswith("?"):
            return  # private modes (cursor keys, wrap...) do not move anything
        args = [int(a) if a else 0 for a in raw.split(";")] if raw else []
        first = args[0] if args and args[0] else 1
        if final in "Hf":
            self.y = (args[0] if args and args[0] else 1) - 1
            self.x = (args[1] if len(args) > 1 and args[1] else 1) - 1
        elif final == "A":
            self.y = max(self.y - first, self.top if self.y >= self.top else 0)
        elif final == "B":
            self.y = min(self.y + first, self.bottom if self.y <= self.bottom else self.rows - 1)
        elif final == "C":
            self.x += first
        elif final == "D":
            self.x -= first
        elif final == "G":
            self.x = first - 1
        elif final == "d":
            self.y = first - 1
        elif final == "r":
            self.top = (args[0] if args and args[0] else 1) - 1
            self.bottom = (args[1] if len(args) > 1 and args[1] else self.rows) - 1
            self.y = self.x = 0
        elif final == "J":
            self._erase_display(args[0] if args else 0)
        elif final == "K":
            self._erase_line(args[0] if args else 0)
        elif final == "X":
            end = min(self.x + first, self.cols)
            self.grid[self.y][self.x:end] = [" "] * (end - self.x)
        elif final == "P":
            row = self.grid[self.y]
            del row[self.x:self.x + first]
            row.extend([" "] * (self.cols - len(row)))
        elif final == "@":
            row = self.grid[self.y]
            row[self.x:self.x] = [" "] * first
            del row[self.cols:]
        elif final == "L":
            for _ in range(first):
                del self.grid[self.bottom]
                self.grid.insert(self.y, self._blank())
        elif final == "M":
            for _ in range(first):
                del self.grid[self.y]
                self.grid.insert(self.bottom, self._blank())
        self._clamp()

    def _erase_display(self, mode: int) -> None:
        if mode == 0:
            self._erase_line(0)
            for row in range(self.y + 1, self.rows):
                self.grid[row] = self._blank()
        elif mode == 1:
            self._erase_line(1)
            for row in range(0, self.y):
                self.grid[row] = self._blank()
        else:
            self.grid = [self._blank() for _ in range(self.rows)]

    def _erase_line(self, mode: int) -> None:
        row = self.grid[self.y]
        if mode == 0:
            row[self.x:] = [" "] * (self.cols - self.x)
        elif mode == 1:
            row[:self.x + 1] = [" "] * (self.x + 1)
        else:
            self.grid[self.y] = self._blank()

    # -- output --------------------------------------------------------------------------
    def lines(self) -> list[str]:
        """The screen as text lines, trailing blanks removed."""
        out = ["".join(row).rstrip() for row in self.grid]
        while out and not out[-1]:
            out.pop()
        return out

    def text(self) -> str:
        return "\n".join(self.lines())
