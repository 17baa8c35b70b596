"""MkDocs hooks: the parts of the site that are generated from the code at build time.

- ``api/*.md``: one page per public module, with a mkdocstrings entry for every public symbol
  (the list of ``docs/check_docstrings.py``, so the reference follows ``__all__``).
- Markers ``<!-- ssl4gie:NAME [ARG] -->`` in a page are replaced by a generated Markdown block:

  ===================  ===============================================================
  ``zoo-table``        the zoo table (``ssl4gie.zoo.readme``, the README's own table)
  ``zoo-results``      downstream results recorded on the cards
  ``zoo-details``      per-entry epochs, paper, release page and notes
  ``recipes``          each method's optimisation recipe per backbone kind (``RECIPES``)
  ``methods``          a section per method: paper, class, views, defaults, recipes, configs
  ``configs KIND``     the shipped LightningCLI configs of ``pretrain`` or ``finetune``
  ===================  ===============================================================

An unknown marker fails the build. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

DOCS = Path(__file__).parents[1]
MARKER = re.compile(r"<!-- ssl4gie:([a-z-]+)(?: ([a-z]+))? -->")
API_PAGES = {  # page -> the public module it documents
    "api/ssl4gie.md": "ssl4gie",
    "api/zoo.md": "ssl4gie.zoo",
    "api/methods.md": "ssl4gie.methods",
    "api/tasks.md": "ssl4gie.tasks",
    "api/losses.md": "ssl4gie.losses",
    "api/data.md": "ssl4gie.data",
    "api/transforms.md": "ssl4gie.transforms",
    "api/analysis.md": "ssl4gie.analysis",
    "api/studies.md": "ssl4gie.studies",
}


def _checker():
    spec = importlib.util.spec_from_file_location("check_docstrings", DOCS / "check_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- API reference ---------------------------------------------------------------------------


def api_pages() -> dict[str, str]:
    """Markdown of every API page: the module docstring, then one entry per public symbol.

    A symbol already rendered on an earlier page (the top level re-exports the zoo) is linked
    instead of rendered twice.
    """
    checker = _checker()
    symbols = checker.public_symbols()
    rendered: set[str] = set()
    pages = {}
    for page, public in API_PAGES.items():
        lines = [f"# {public}", "", f"::: {public}", *_options(members="false"), ""]
        groups: dict[str, list] = {}
        for symbol in symbols:
            if symbol.module == public or symbol.module.startswith(public + "."):
                if public == "ssl4gie" and symbol.module != "ssl4gie":
                    continue  # the top-level page holds only the top-level names
                groups.setdefault(symbol.module, []).append(symbol)
        for module, members in groups.items():
            level = 2
            if module != public:  # a submodule of a package without __all__: its own section
                intro = _options(members="false", heading_level=2, show_root_heading="true")
                intro.append("      show_root_full_path: true")
                lines += [f"::: {module}", *intro, ""]
                level = 3
            elsewhere = [s for s in members if s.path in rendered]
            entry = _options(heading_level=level, show_root_heading="true")
            for symbol in members:
                if symbol.path not in rendered:
                    rendered.add(symbol.path)
                    lines += [f"::: {symbol.path}", *entry, ""]
            if elsewhere:
                names = ", ".join(f"[`{s.name}`][{s.path}]" for s in elsewhere)
                lines += [f"Also exported here, documented on another page: {names}.", ""]
        pages[page] = "\n".join(lines)
    return pages


def _options(**options) -> list[str]:
    """mkdocstrings options of one ``:::`` entry, as indented YAML lines."""
    return ["    options:", *(f"      {key}: {value}" for key, value in options.items())]


# -- model zoo ---------------------------------------------------------------------------------


def zoo_table() -> str:
    from ssl4gie.zoo.readme import readme_table

    return readme_table()


def zoo_results() -> str:
    from ssl4gie.zoo.registry import backbone_card, builtin_names

    rows = [
        f"| `{name}` | {metric} | {value} |"
        for name in builtin_names()
        for metric, value in backbone_card(name).results.items()
    ]
    return "\n".join(["| name | metric | value |", "|---|---|---|", *rows])


def zoo_details() -> str:
    from ssl4gie.zoo.registry import backbone_card, builtin_names

    lines = ["| name | epochs | paper | released at | notes |", "|---|---|---|---|---|"]
    for name in builtin_names():
        card = backbone_card(name)
        paper = f"[{card.paper.rsplit('/', 1)[-1]}]({card.paper})" if card.paper else "-"
        origin = _origin_link(card.origin_url)
        notes = (card.notes or "-").replace("|", "\\|")
        lines.append(f"| `{name}` | {card.epochs or '-'} | {paper} | {origin} | {notes} |")
    return "\n".join(lines)


def _origin_link(url: str | None) -> str:
    if not url:
        return "-"
    host = re.sub(r"^https?://", "", url).split("/")[0]
    label = "/".join(url.split("/")[3:5]) if host == "github.com" else host
    return f"[{label}]({url})"


# -- methods -----------------------------------------------------------------------------------

PAPER = re.compile(  # Name [Authors Year, "Title", arXiv:NNNN.NNNNN; org/repo ...]
    r'(?P<name>^.*?) \[(?P<authors>[^"\[]+?\d{4}), "(?P<title>[^"]+)", '
    r"arXiv:(?P<arxiv>\d{4}\.\d{4,5});\s*(?P<code>[\w.-]+/[\w.-]+)"
)


def method_paper(cls: type) -> dict[str, str]:
    """Name, authors, title, arXiv id and reference code from a method module's docstring."""
    doc = " ".join((inspect.getmodule(cls).__doc__ or "").split())
    match = PAPER.search(doc)
    if match is None:
        expected = 'Name [Authors Year, "Title", arXiv:...; org/repo]'
        raise PluginError(f"the docstring of {cls.__module__} does not start {expected!r}")
    return match.groupdict()


def _number(value: float) -> str:
    """``0.6``, ``0.0051``; below 1e-3 in short scientific form: ``1.5e-4``."""
    if value == 0 or abs(value) >= 1e-3:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _recipe_text(recipe, min_lr: float | None = None) -> str:
    """``min_lr``: the method's absolute final learning rate, where it has one (DINO)."""
    if min_lr is not None:
        final = f"{_number(min_lr)} (absolute)"
    else:
        final = f"{_number(recipe.min_lr_ratio)} x lr" if recipe.min_lr_ratio else "0"
    text = (
        f"{recipe.optimizer.upper() if recipe.optimizer != 'adamw' else 'AdamW'}, base lr "
        f"{_number(recipe.base_lr)} per 256 images, weight decay {_number(recipe.weight_decay)}, "
        f"{recipe.warmup_epochs:g} warm-up epochs, cosine to {final}"
    )
    if recipe.bias_lr_ratio != 1:
        text += f", biases and norms at {recipe.bias_lr_ratio:.4g} x lr"
    return text


def recipes() -> str:
    """One row per method: its CNN and ViT recipes, and its paper."""
    from ssl4gie.methods import METHODS

    lines = ["| method | CNN backbones | ViT backbones |", "|---|---|---|"]
    for name, cls in METHODS.items():
        min_lr = inspect.signature(cls).parameters.get("min_lr")
        absolute = None if min_lr is None else min_lr.default
        cnn, vit = (_recipe_text(cls.RECIPES[kind], absolute) for kind in ("cnn", "vit"))
        lines.append(f"| [`{name}`](#{name}) | {cnn} | {vit} |")
    return "\n".join(lines)


def _default_views(cls: type) -> str:
    match = re.search(r"return (\w+\.\w+)\(\)", inspect.getsource(cls.default_views))
    if match is None:
        raise PluginError(f"{cls.__name__}.default_views does not return a preset")
    return match.group(1)


def methods() -> str:
    """A section per method: paper, class, views, defaults, recipes and shipped configs."""
    from ssl4gie.cli.lightning import CONFIGS
    from ssl4gie.methods import METHODS

    sections = []
    for name, cls in METHODS.items():
        paper = method_paper(cls)
        parameters = inspect.signature(cls.__init__).parameters.values()
        arguments = ", ".join(
            f"`{p.name}={p.default!r}`"
            for p in parameters
            if p.name != "self" and p.kind is not p.VAR_KEYWORD
        )
        configs = [
            f"`pretrain/{path.stem}`"
            for path in sorted((CONFIGS / "pretrain").glob("*.yaml"))
            if f"ssl4gie.methods.{cls.__name__}\n" in path.read_text(encoding="utf-8")
        ]
        views = _default_views(cls)
        views_path = f"ssl4gie.transforms.views.{views}"
        sections += [
            f"### {paper['name']} {{ #{name} }}",
            "",
            f"{paper['authors']}, *{paper['title']}*, "
            f"[arXiv:{paper['arxiv']}](https://arxiv.org/abs/{paper['arxiv']}); reference code "
            f"[{paper['code']}](https://github.com/{paper['code']}).",
            "",
            f"- class [`ssl4gie.methods.{cls.__name__}`][{cls.__module__}.{cls.__name__}], "
            f"config name `{name}` for `create_method`",
            f"- views [`{views}`][{views_path}]",
            f"- arguments and defaults: {arguments}",
            f"- recipe for CNN backbones: {_recipe_text(cls.RECIPES['cnn'])}",
            f"- recipe for ViT backbones: {_recipe_text(cls.RECIPES['vit'])}",
            f"- shipped configs: {', '.join(configs) if configs else 'none'}",
            "",
        ]
    return "\n".join(sections)


# -- shipped configs -------------------------------------------------------------------------


def configs(kind: str) -> str:
    import yaml

    from ssl4gie.cli.lightning import CONFIGS

    folder = CONFIGS / kind
    if kind not in ("pretrain", "finetune") or not folder.is_dir():
        raise PluginError(f"configs marker needs 'pretrain' or 'finetune', got {kind!r}")
    columns = ("method", "backbone", "GPUs x batch", "epochs", "run")
    if kind == "finetune":
        columns = ("task", "backbone", "data", "size", "epochs")
    lines = ["| config | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        config = yaml.safe_load(text)
        model, trainer, data = config["model"], config["trainer"], config["data"]
        args = model.get("init_args", {})
        cls = model["class_path"].rsplit(".", 1)[-1]
        name = f"`{kind}/{path.stem}`"
        if kind == "pretrain":
            title = text.splitlines()[0].lstrip("# ").rstrip(".")
            batch = f"{trainer.get('devices', 1)} x {data['batch_size']}"
            lines.append(
                f"| {name} | {cls} | {args.get('backbone')} | {batch} "
                f"| {trainer.get('max_epochs')} | {title} |"
            )
        else:
            data_args = data.get("init_args", {})
            lines.append(
                f"| {name} | {cls} | `{args.get('backbone')}` | {data_args.get('root')} "
                f"| {data_args.get('size')} | {trainer.get('max_epochs')} |"
            )
    return "\n".join(lines)


GENERATORS = {
    "zoo-table": zoo_table,
    "zoo-results": zoo_results,
    "zoo-details": zoo_details,
    "recipes": recipes,
    "methods": methods,
    "configs": configs,
}


# -- MkDocs events ---------------------------------------------------------------------------


def on_files(files: Files, config) -> Files:
    """Add the generated API pages."""
    for page, content in api_pages().items():
        files.append(File.generated(config, page, content=content))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the ``<!-- ssl4gie:... -->`` markers of a page by their generated blocks."""

    def replace(match: re.Match) -> str:
        name, argument = match.groups()
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown marker {match.group(0)}")
        generator = GENERATORS[name]
        return generator(argument) if argument else generator()

    return MARKER.sub(replace, markdown)
