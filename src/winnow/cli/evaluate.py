"""`winnow evaluate` and `winnow batch-recommend`: offline quality, measured honestly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from winnow.cli.app import app, config

_COLUMNS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty",
            "diversity", "popularity", "gini")


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    k = result.k
    table = Table(title=f"{result.dataset} - {result.protocol} {result.params} - top-{k}")
    table.add_column("model")
    keys = [f"{c}@{k}" for c in _COLUMNS]
    summary = result.summary()
    keys = [key for key in keys if any(key in row for row in summary)]
    for key in keys:
        table.add_column(key.replace(f"@{k}", ""), justify="right")
    table.add_column("fit s", justify="right")
    for row in summary:
        cells = []
        for key in keys:
            v = row.get(key, float("nan"))
            cell = f"{v:.2f}" if key.startswith("popularity") else f"{v:.4f}"
            if f"{key}_std" in row:
                cell += f" ±{row[f'{key}_std']:.4f}"
            cells.append(cell)
        table.add_row(row["model"], *cells, f"{row['fit_seconds']:.1f}")
    console = Console()
    console.width = max(console.width, 180)  # a metrics table is wide; never squash it to "0.…"
    console.print(table)


@app.command("evaluate")
def evaluate(dataset: str = typer.Option("synthetic", help="ml-100k | ml-latest-small | lastfm | "
                                         "synthetic[:U,I,E] | store | a directory"),
             protocol: str = typer.Option("random", help="random | temporal | leave-last"),
             models: str = typer.Option("popularity,itemitem,als,bpr,ease",
                                        help="comma-separated model names"),
             k: int = typer.Option(10, min=1, max=1000),
             ratio: Optional[float] = typer.Option(None, min=0.01, max=0.99,
                                                   help="train share (random) or time quantile (temporal)"),
             seeds: str = typer.Option("0", help="comma-separated split seeds"),
             data_dir: Optional[Path] = typer.Option(None, help="where named datasets live"),
             json_out: Optional[Path] = typer.Option(None, "--json", help="write results as JSON"),
             report: Optional[Path] = typer.Option(None, "--report", dir_okay=False,
                                                   help="write a self-contained HTML report (plots embedded)")) -> None:
    """Split, fit every model on train, and print one row of metrics per model."""
    from tqdm import tqdm

    from winnow.evaluation.datasets import load_named_dataset
    from winnow.evaluation.runner import evaluate_models

    cfg = config()
    names = [m.strip() for m in models.split(",") if m.strip()]
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    data = load_named_dataset(dataset, cfg, data_dir=data_dir, seed=seed_list[0])
    bar = tqdm(total=len(names) * len(seed_list), desc="evaluating", unit="model")

    def tick(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    extras = None
    try:
        if report is not None:  # same protocol and rows, plus the report's curves (one fit per model)
            from winnow.evaluation.report import evaluate_for_report

            result, extras = evaluate_for_report(data, names, cfg, protocol=protocol, k=k, seeds=seed_list,
                                                 ratio=ratio, progress=tick)
        else:
            result = evaluate_models(data, names, cfg, protocol=protocol, k=k, seeds=seed_list,
                                     ratio=ratio, progress=tick)
    finally:
        bar.close()
    _print_table(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
        typer.echo(f"wrote {json_out}")
    if report is not None and extras is not None:
        from winnow.evaluation.report import write_report

        typer.echo(f"wrote {write_report(result, extras, report)}")


@app.command("batch-recommend")
def batch_recommend(train: Path = typer.Option(..., exists=True, dir_okay=False,
                                               help="events: user_id,item_id,timestamp[,event_type][,value]"),
                    items: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                         help="items: item_id + any of title, categories, ..."),
                    users: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                         help="users to serve: user_id + any columns"),
                    candidates: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                              help="item ids, one per line"),
                    k: int = typer.Option(10, min=1, max=10_000),
                    model: Optional[str] = typer.Option(
                        None, help="a registry model (e.g. als, ease) or `stacked` (the offline stacked "
                                   "ranker) instead of the service's pipeline"),
                    out: Path = typer.Option(..., help="output CSV: user_id,item_id,rank,score"),
                    engine: Optional[str] = typer.Option(
                        None, help="local | ray (default: the training engine setting); ray scores a --model "
                                   "(default `stacked`) on Ray Data, not the service's pipeline"),
                    workers: Optional[int] = typer.Option(
                        None, min=1, help="processes answering users through the pipeline "
                                          "(default 1; the file is the same for any number)"),
                    ) -> None:
    """Fit on --train only and write the top-k for every user (cold users included): by default
    what the service's pipeline answers (`winnow train`'s bundle, exploration off)."""
    from winnow.data.importers.generic import load
    from winnow.data.training_data import dataset_from_frames
    from winnow.training.batch import batch_recommend as run, read_candidates

    cfg = config()
    imported = load(events=train, items=items, users=users)
    data = dataset_from_frames(imported.events, imported.items if items else None,
                               imported.users if users else None, cfg.events, name=str(train))
    user_list = list(imported.users["user_id"]) if users else None
    cand = read_candidates(candidates, data) if candidates else None
    if model is None and (engine or cfg.training.engine) == "local":
        from winnow.offline.batch_recommend import served_batch_recommend

        summary = served_batch_recommend(imported, data, cfg, k=k, out=out, users=user_list, workers=workers,
                                         candidates=None if cand is None else data.item_ids.decode(cand))
    else:
        summary = run(data, cfg, k=k, out=out, users=user_list, candidates=cand,
                      model_name=model or "stacked", engine=engine)
    typer.echo(f"wrote {summary.rows:,} rows for {summary.users:,} users "
               f"({summary.cold_users:,} cold) with {summary.model} -> {out}")
