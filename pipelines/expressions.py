"""The subset of Argo's boolean expressions the local executor understands.

Argo evaluates `when:` (after substituting `{{...}}` variables) and `depends:` with govaluate.
This module parses the common subset -- comparisons `== != < <= > >=`, `&& || !`, parentheses,
numbers, quoted strings, `true`/`false` and bare words (compared as strings, as Argo users write
`{{tasks.flip.outputs.result}} == heads`) -- and raises `ExpressionError` on anything else, so a
workflow is never run with a condition silently misread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\))|(?P<str>'[^']*'|\"[^\"]*\")|"
    r"(?P<num>-?\d+(?:\.\d+)?(?![\w.-]))|(?P<word>[A-Za-z_][\w.\-]*))"
)


class ExpressionError(ValueError):
    """The expression uses syntax outside the supported subset, or is malformed."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokenize(expr: str) -> list[_Tok]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot parse {expr!r} at {expr[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent: or := and ('||' and)*; and := not ('&&' not)*; not := '!' not | cmp."""

    def __init__(self, expr: str, resolve_word: Callable[[str], object]) -> None:
        self.expr = expr
        self.toks = _tokenize(expr)
        self.i = 0
        self.resolve_word = resolve_word

    def parse(self) -> bool:
        if not self.toks:
            raise ExpressionError("empty expression")
        value = self._or()
        if self.i != len(self.toks):
            raise ExpressionError(f"unexpected {self.toks[self.i].text!r} in {self.expr!r}")
        return _truthy(value, self.expr)

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, text: str) -> bool:
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text == text:
            self.i += 1
            return True
        return False

    def _or(self) -> object:
        left = self._and()
        while self._take("||"):
            right = self._and()
            left = _truthy(left, self.expr) or _truthy(right, self.expr)
        return left

    def _and(self) -> object:
        left = self._not()
        while self._take("&&"):
            right = self._not()
            left = _truthy(left, self.expr) and _truthy(right, self.expr)
        return left

    def _not(self) -> object:
        if self._take("!"):
            return not _truthy(self._not(), self.expr)
        return self._cmp()

    def _cmp(self) -> object:
        left = self._atom()
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text in {"==", "!=", "<", "<=", ">", ">="}:
            self.i += 1
            return _compare(left, tok.text, self._atom(), self.expr)
        return left

    def _atom(self) -> object:
        tok = self._peek()
        if tok is None:
            raise ExpressionError(f"unexpected end of {self.expr!r}")
        self.i += 1
        if tok.kind == "op" and tok.text == "(":
            value = self._or()
            if not self._take(")"):
                raise ExpressionError(f"missing ')' in {self.expr!r}")
            return value
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "str":
            return tok.text[1:-1]
        if tok.kind == "word":
            return self.resolve_word(tok.text)
        raise ExpressionError(f"unexpected {tok.text!r} in {self.expr!r}")


def _truthy(value: object, expr: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ExpressionError(f"{expr!r}: {value!r} is not a condition (true/false)")


def _compare(left: object, op: str, right: object, expr: str) -> bool:
    if op in {"==", "!="}:
        # Argo substitutes outputs as text: "5" == 5 must hold, as it does there.
        equal = _as_number(left) == _as_number(right) if _numeric(left, right) else str(left) == str(right)
        return equal if op == "==" else not equal
    if not _numeric(left, right):
        raise ExpressionError(f"{expr!r}: {op} needs numbers, got {left!r} and {right!r}")
    a, b = _as_number(left), _as_number(right)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _numeric(*values: object) -> bool:
    try:
        for v in values:
            if isinstance(v, bool):
                return False
            float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _as_number(v: object) -> float:
    return float(v)  # type: ignore[arg-type]


def evaluate_when(expr: str) -> bool:
    """Evaluate a `when:` condition whose `{{...}}` variables have already been substituted."""
    if "{{" in expr:
        raise ExpressionError(f"unresolved variable in {expr!r}")

    def word(w: str) -> object:
        return {"true": True, "false": False}.get(w, w)

    return _Parser(expr, word).parse()


# Task results in `depends`, and which of them count as a dependency being met.
_RESULTS = {"Succeeded", "Skipped"}
_UNSUPPORTED_RESULTS = {"Failed", "Errored", "Daemoned", "AnySucceeded", "AllFailed"}


def depends_names(expr: str) -> set[str]:
    """Task names a `depends:` expression refers to (validating its syntax and result kinds)."""
    names: set[str] = set()

    def word(w: str) -> object:
        task, _, result = w.partition(".")
        if result in _UNSUPPORTED_RESULTS:
            raise ExpressionError(
                f"depends {expr!r}: '.{result}' is not supported locally -- the local executor stops "
                "at the first failed task, so a handler waiting for it would never run"
            )
        if result and result not in _RESULTS:
            raise ExpressionError(f"depends {expr!r}: unknown task result '.{result}'")
        names.add(task)
        return True

    _Parser(expr, word).parse()
    return names


def evaluate_depends(expr: str, phases: dict[str, str]) -> bool:
    """Whether a `depends:` expression holds, given finished tasks' phases (Succeeded/Skipped/Failed).

    A bare task name means "Succeeded or Skipped", as in Argo.
    """

    def word(w: str) -> object:
        task, _, result = w.partition(".")
        phase = phases.get(task)
        if phase is None:
            raise ExpressionError(f"depends {expr!r}: task {task!r} has not finished")
        return phase in _RESULTS if not result else phase == result

    return _Parser(expr, word).parse()
