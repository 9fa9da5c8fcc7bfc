"""Search routes: venues near a point, and reading places holding a book."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from backend.access import Call, endpoint
from search import books, clusters, service
from search.schemas import (
    BookSearchPage,
    BookSearchQuery,
    ClusterQuery,
    ClusterSummary,
    SearchPage,
    VenueSearchQuery,
)

bp = Blueprint("search", url_prefix="/api/v1")
BACKEND_HEADER = "X-Search-Backend"


@bp.get("/venues/search")
@endpoint(
    summary="附近场所搜索（按距离由近到远）",
    tag="search",
    public=True,
    query=VenueSearchQuery,
    response=SearchPage,
    description=(
        "按大地线距离（WGS-84 椭球，整米）由近到远排序，距离相同按 id 排序，翻页稳定。"
        "location 使用请求的 coord 坐标系。open_now、accessible、has_free_spaces 为 true 时"
        "才过滤。响应头 X-Search-Backend 说明由 elasticsearch 还是 database 作答"
        "（Elasticsearch 不可用时自动改由数据库作答）。"
    ),
)
async def search_venues(request: Request, call: Call[VenueSearchQuery, None]) -> HTTPResponse:
    page, backend = await service.search_venues(ctx=call.ctx, query=call.query)
    # pydantic writes the JSON itself: the same bytes as dumping ``model_dump(mode="json")``
    # (tests/test_search_api.py), without the dict in between.
    return HTTPResponse(
        page.model_dump_json(), content_type="application/json", headers={BACKEND_HEADER: backend}
    )


@bp.get("/books/search")
@endpoint(
    summary="找书：附近哪些阅读空间有这本书",
    tag="search",
    public=True,
    query=BookSearchQuery,
    response=BookSearchPage,
    description=(
        "q（书名或作者，子串匹配）与 isbn 二选一。有可借册的场所排在前面，"
        "全部借出的排在后面；每组内按距离由近到远，距离相同按 id。"
    ),
)
async def search_books(request: Request, call: Call[BookSearchQuery, None]) -> BookSearchPage:
    return await books.search_books(ctx=call.ctx, query=call.query)


@bp.get("/venues/clusters")
@endpoint(
    summary="地图聚合：视野内每个网格的场所数量",
    tag="search",
    public=True,
    query=ClusterQuery,
    response=ClusterSummary,
    description=(
        "把视野（min/max lat/lng，按 coord 坐标系）切成 cells × cells 个等大网格，"
        "返回非空网格的数量与平均位置；视野每边跨度不超过 2 度。"
    ),
)
async def venue_clusters(request: Request, call: Call[ClusterQuery, None]) -> ClusterSummary:
    return await clusters.summarise(ctx=call.ctx, query=call.query)
