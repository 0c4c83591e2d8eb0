"""The Jinja environment of templates/, whose errors are the user's: a missing template, a syntax error,
an undefined variable, templates that include each other without end. Each becomes a UserError naming
the template file and line instead of a traceback from inside Jinja."""

from __future__ import annotations

import traceback
from pathlib import Path

import jinja2

from site_builder.errors import UserError


def _shown(folder: Path, rel: str) -> str:
    """A project's templates/ as `templates/...`; the packaged theme as `site_builder/theme/...`."""
    return f"{folder.parent.name if folder.name == 'theme' else ''}/{folder.name}/{rel}".lstrip("/")


def _where(exc: BaseException, folders: list[Path]) -> tuple[str, int | None]:
    """The innermost template frame of the traceback (Jinja rewrites frames to the template's file and line)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        for folder in folders:
            if path.is_relative_to(folder):
                return _shown(folder, path.relative_to(folder).as_posix()), frame.lineno
    return "templates/", None


def _where_file(exc: jinja2.TemplateSyntaxError, folders: list[Path]) -> str:
    """The template file a syntax error is in (its absolute filename, shown relative to its folder)."""
    path = Path(exc.filename or "")
    for folder in folders:
        if path.is_relative_to(folder):
            return _shown(folder, path.relative_to(folder).as_posix())
    return f"templates/{exc.name}"


def _folders(environment: jinja2.Environment) -> list[Path]:
    return [Path(p) for p in environment.loader.searchpath]


class ReportingTemplate(jinja2.Template):
    def render(self, *args, **kwargs) -> str:
        try:
            return super().render(*args, **kwargs)
        except UserError:
            raise
        except RecursionError as exc:
            path, line = _where(exc, _folders(self.environment))
            raise UserError("templates include or call each other without end", path=path, line=line) from None
        except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError) as exc:
            if isinstance(exc, jinja2.TemplateSyntaxError):  # in an included template, found while rendering
                raise UserError(f"template syntax: {exc.message}", path=_where_file(exc, _folders(self.environment)), line=exc.lineno) from None
            path, line = _where(exc, _folders(self.environment))
            message = exc.message if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}"
            raise UserError(f"template error: {message}", path=path, line=line) from None


class TemplateEnvironment(jinja2.Environment):
    """jinja2.Environment(loader=FileSystemLoader(folder), ...) whose errors are UserErrors."""

    template_class = ReportingTemplate

    def get_template(self, name, *args, **kwargs):
        try:
            return super().get_template(name, *args, **kwargs)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"template syntax: {exc.message}", path=_where_file(exc, _folders(self)), line=exc.lineno) from None
        except jinja2.TemplateNotFound as exc:
            parent = kwargs.get("parent") or (args[0] if args else None)  # the template that includes or extends it
            where = f"templates/{parent}" if parent else "templates/"
            raise UserError(f"template '{exc.name}' not found in templates/ or the theme", path=where) from None
        except UnicodeDecodeError as exc:
            raise UserError(f"not UTF-8 text (byte {exc.start})", path=f"templates/{name}") from None
