"""Recommendation and similar-item routes (the funnel over HTTP)."""


from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from winnow.core.config import ServingConfig
from winnow.serving.errors import ApiError
from winnow.serving.schemas import RecContext, RecItem, RecOut, SimilarItem, SimilarOut
from winnow.serving.service import Service


def _split(values: list[str]) -> list[str]:
    """exclude=a,b&exclude=c -> [a, b, c]."""
    return [v for raw in values for v in raw.split(",") if v]


def _json(out: RecOut) -> Response:
    """The response body serialised once by pydantic-core (``response_model`` still documents
    it): returning the model would make FastAPI dump it, validate it again and dump it again,
    ~0.2 ms per recommendation."""
    return Response(out.model_dump_json(), media_type="application/json")


def make_router(cfg: ServingConfig) -> APIRouter:
    """Routes whose parameter bounds come from the [serving] config (k <= max_k)."""
    router = APIRouter(tags=["recommendations"])
    K = Annotated[int, Query(ge=1, le=cfg.max_k, description=f"slate size, 1..{cfg.max_k}")]
    UserId = Annotated[str, Path(min_length=1, max_length=256)]
    Surface = Annotated[str, Query(min_length=1, max_length=64)]
    Exclude = Annotated[list[str], Query(description="item ids never to return (repeat or comma-separate)")]

    def _recommend(request: Request, user_id: str, k: int, surface: str, exclude: list[str],
                   explain: bool, ctx: RecContext | None) -> RecOut:
        svc: Service = request.app.state.service
        context: dict[str, Any] = {}
        categories = None
        now = None
        excl = _split(exclude)
        if ctx is not None:
            context = ctx.model_dump(exclude_none=True, exclude={"filters", "exclude"})
            if ctx.filters is not None and ctx.filters.categories is not None:
                categories = ctx.filters.categories
                context["filters"] = {"categories": categories}
            now = ctx.time
            excl += ctx.exclude
        if len(excl) > 10_000:
            raise ApiError(413, f"{len(excl)} excluded ids; the limit is 10000")
        rt, request_id, slate = svc.recommend(user_id, k=k, surface=surface, exclude=excl, explain=explain,
                                              categories=categories, context=context, now=now)
        ids = rt.catalog.item_ids.decode([s.item for s in slate.items])
        items = [RecItem(item_id=iid, score=s.score, position=s.position, sources=s.sources,
                         propensity=s.propensity, trace=s.trace) for iid, s in zip(ids, slate.items, strict=True)]
        removed = None
        if slate.removed is not None:
            dec = rt.catalog.item_ids.decode([r["item"] for r in slate.removed])
            removed = [{"item_id": d, "rule": r["rule"], "reason": r["reason"]}
                       for d, r in zip(dec, slate.removed, strict=True)]
        return RecOut(request_id=request_id, model_version=rt.version, surface=surface,
                      fallback=slate.fallbacks[0] if slate.fallbacks else None,
                      fallbacks=slate.fallbacks, items=items, removed=removed,
                      experiments=slate.experiments, arm=slate.arm)

    @router.get("/v1/users/{user_id}/recommendations", response_model=RecOut,
                summary="Top-k recommendations for a user (unknown users get the cold-start chain)")
    async def get_recs(request: Request, user_id: UserId, k: K = cfg.default_k, surface: Surface = "default",
                       exclude: Exclude = [], explain: bool = False) -> Response:  # noqa: B006
        return _json(_recommend(request, user_id, k, surface, exclude, explain, None))

    @router.post("/v1/users/{user_id}/recommendations", response_model=RecOut,
                 summary="Top-k recommendations with a request context (device, locale, time, query, filters)")
    async def post_recs(request: Request, user_id: UserId, context: RecContext | None = None,
                        k: K = cfg.default_k, surface: Surface = "default", exclude: Exclude = [],  # noqa: B006
                        explain: bool = False) -> Response:
        return _json(_recommend(request, user_id, k, surface, exclude, explain, context))

    @router.get("/v1/items/{item_id}/similar", response_model=SimilarOut,
                summary="Items similar to one item: co-occurrence and embedding neighbours (404 unknown)")
    async def similar(request: Request, item_id: UserId, k: K = cfg.default_k) -> SimilarOut:
        svc: Service = request.app.state.service
        rt = svc.runtime
        idx = rt.catalog.item_ids.get(item_id)
        if idx < 0:
            raise ApiError(404, f"unknown item id: {item_id!r}")
        found = rt.similar(idx, k)
        ids = rt.catalog.item_ids.decode([f[0] for f in found])
        return SimilarOut(item_id=item_id, model_version=rt.version,
                          items=[SimilarItem(item_id=i, score=f[1], sources=f[2])
                                 for i, f in zip(ids, found, strict=True)])

    return router
