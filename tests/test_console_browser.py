"""The console in a real browser: Debian's Chromium driven by Playwright against a real server.

A ``sanic server.app:create_app --factory`` process on 127.0.0.1 serves a migrated database seeded
with ``tests/console_world.py`` (the profile's own database: a fresh SQLite file, or the services
run's PostgreSQL test database with its own key and index prefixes). Chromium is installed by
``scripts/browser-up.sh`` (``make test`` runs it first); Playwright's own browser download is not
used. Each main page is screenshotted under ``var/test-artifacts/console/`` and checked with
axe-core (from the npm registry): no serious or critical violations. The pages' strict CSP stays
on: axe is injected through the DevTools protocol (``page.evaluate``), which a CSP does not govern.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from playwright.async_api import Browser, Page, async_playwright, expect

from backend.clock import SHANGHAI
from residents.identity import id_for
from tests.conftest import PROFILE, RUN_ID
from tests.console_world import PASSWORD
from tests.server_process import stop

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "var" / "test-artifacts" / "console"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_LOG_LEVEL="WARNING",
        SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:console:",
        SMARTCIRCLE_ES_INDEX_PREFIX=f"test-{RUN_ID}-console",
        SMARTCIRCLE_JWT_SECRET="console-browser-test-" + "x" * 32,
        PYTHONPATH=str(REPO),
    )
    if PROFILE == "services":
        # Similar-item suggestions come from the Elasticsearch index, kept by a scheduled sync.
        env.update(
            SMARTCIRCLE_PROFILE="services",
            DATABASE_URL=os.environ["TEST_DATABASE_URL"],
            SMARTCIRCLE_SCHEDULER="1",
        )
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
        env.update(
            SMARTCIRCLE_PROFILE="embedded",
            SMARTCIRCLE_VAR_DIR=str(var_dir),
            SMARTCIRCLE_SCHEDULER="0",
        )
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, timeout=180, check=False, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[dict[str, Any]]:
    """A real server on a migrated, seeded database; its base URL and the seeded ids."""
    with tempfile.TemporaryDirectory(prefix="smartcircle-console-") as tmp:
        env = _env(Path(tmp))
        world = json.loads(_run([sys.executable, "-m", "tests.console_world"], env))
        port = _free_port()
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "sanic", "server.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--single-process"],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        await http.get("/api/v1/health")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or process.poll() is not None:
                            pytest.fail(f"server did not start: {log_path.read_text()[-3000:]}")
                        time.sleep(0.2)
            yield {"base": base, **world}
        finally:
            stop(process, timeout=20)
            output = log_path.read_text(errors="replace")
            assert "Traceback" not in output, output[-4000:]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `bash scripts/browser-up.sh` (make test does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="smartcircle-chromium-") as profile:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=FLAGS
            )
            await context.close()  # a fresh profile directory, used once to prove it starts
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield instance
        await instance.close()


class Console:
    """One person's browser tab on the console, recording CSP violations and page errors."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        self.expect_errors = False
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not self.expect_errors:
            self.problems.append(f"{response.status} {response.url}")

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def login(self, username: str) -> None:
        await self.goto("/console/login")
        await self.page.get_by_label("用户名").fill(username)
        await self.page.get_by_label("密码").fill(PASSWORD)
        await self.page.get_by_role("button", name="登录").click()
        await expect(self.page.locator("h1")).to_contain_text("您好")

    async def logout(self) -> None:
        await self.page.get_by_role("button", name="退出登录").click()
        await expect(self.page.locator("h1")).to_contain_text("登录管理后台")

    async def check(self, name: str) -> None:
        """Screenshot the page and run axe-core on it: no serious or critical violations."""
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        await self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = await self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
        )
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert serious == [], f"{name}: {json.dumps(serious, ensure_ascii=False)}"
        assert self.problems == [], f"{name}: {self.problems}"


@pytest.fixture
async def open_console(browser, server):
    contexts = []

    async def make() -> Console:
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 800})
        contexts.append(context)
        return Console(await context.new_page(), server["base"])

    yield make
    for context in contexts:
        await context.close()


def _local(days: float, hour: int = 9) -> str:
    moment = (datetime.now(SHANGHAI) + timedelta(days=days)).replace(hour=hour, minute=0)
    return moment.strftime("%Y-%m-%dT%H:%M")


async def test_curator_runs_a_campaign_and_admin_publishes_a_challenge(open_console, server):
    curator = await open_console()
    await curator.login("c_curator")
    await curator.check("home-curator")

    # A new campaign, its schedule and invited audiences, then its phase timeline.
    await curator.goto("/console/campaigns/new")
    page = curator.page
    await page.get_by_label("标题").fill("2027 年春季痛难点征集")
    for name, days in (
        ("collecting_starts_at", 1),
        ("collecting_ends_at", 20),
        ("voting_starts_at", 5),
        ("voting_ends_at", 30),
        ("closes_at", 45),
    ):
        await page.locator(f"#f-{name}").fill(_local(days))
    await page.get_by_label("企业").uncheck()
    await page.get_by_role("button", name="创建").click()
    await expect(page.locator(".flash")).to_contain_text("已创建征集活动")
    await expect(page.locator("ol.timeline li")).to_have_count(5)
    await curator.check("campaign")
    await curator.goto("/console/campaigns")
    await expect(page.locator("table")).to_contain_text("2027 年春季痛难点征集")
    await curator.check("campaigns")

    # Moderation from the keyboard: I (with a reason), V, V, and M to merge the duplicate.
    spam, other, dup_a, dup_b = (server["submitted"][i] for i in (3, 2, 0, 1))
    await curator.goto(f"/console/moderation?campaign={server['campaign']}")
    suggestion = page.locator(f"#pp-{dup_a} input[value='{dup_b}']")
    deadline = time.monotonic() + 40
    while not await suggestion.count():  # services: the similar-items index syncs every 10 s
        assert time.monotonic() < deadline, "no duplicate suggestion"
        time.sleep(2)
        await page.reload()
    await curator.check("moderation")
    await page.locator(f"#reason-{spam}").fill("广告信息，与城市痛点无关")
    await page.locator(f"#pp-{spam}").focus()
    await page.keyboard.press("i")
    await expect(page.locator(f"#pp-{spam}")).to_contain_text("已判定无效")
    for item in (other, dup_b):
        await page.locator(f"#pp-{item}").focus()
        await page.keyboard.press("v")
        await expect(page.locator(f"#pp-{item}")).to_contain_text("已判定有效")
    await suggestion.check()
    await page.locator(f"#pp-{dup_a}").focus()
    await page.keyboard.press("m")
    await expect(page.locator(f"#pp-{dup_a}")).to_contain_text(
        "已合并到「小区门口夜间停车位严重不足」"
    )
    await curator.goto(f"/console/moderation?campaign={server['campaign']}")
    await expect(page.locator("main")).to_contain_text("队列已清空")

    # The dashboard draws its charts (ECharts, offline map) under the strict CSP.
    await curator.goto(f"/console/dashboard?campaign={server['campaign']}")
    await expect(page.locator("html[data-charts-ready='1']")).to_have_count(1)
    await expect(page.locator("[data-chart='map'] canvas")).to_have_count(1)
    await curator.check("dashboard")

    # Curation: shortlist the merged item, write a challenge from it, send it for review.
    await curator.goto(f"/console/challenges?campaign={server['campaign']}")
    row = page.locator("tr", has_text="小区门口夜间停车位严重不足")
    await row.get_by_role("button", name="加入").click()
    await expect(page.locator(".flash")).to_contain_text("已加入候选清单")
    await curator.check("challenges")
    await page.get_by_role("link", name="用它写挑战").first.click()
    await page.get_by_label("标题").fill("小区夜间停车共享")
    await page.get_by_label("问题描述").fill("老旧小区夜间车位严重不足，周边单位车位夜间空置。")
    await page.get_by_label("责任部门").fill("市城管局")
    await page.locator("#f-submission_deadline").fill(_local(30))
    await page.get_by_role("button", name="创建草稿").click()
    await expect(page.locator(".flash")).to_contain_text("已创建挑战草稿")
    challenge_url = page.url.removeprefix(server["base"])
    await curator.check("challenge-draft")
    await page.get_by_role("button", name="提交审核").click()
    await expect(page.locator(".flash")).to_contain_text("已提交审核")

    # Exports run in the background with their progress, then offer the file.
    await curator.goto(f"/console/campaigns/{server['campaign']}/exports")
    await page.get_by_role("button", name="导出 CSV").click()
    link = page.get_by_role("link", name=re.compile("下载 .*\\.csv"))
    await expect(link).to_be_visible()
    async with page.expect_download() as download:
        await link.click()
    assert (await download.value).suggested_filename.endswith(".csv")
    await curator.check("exports")
    await curator.logout()

    # Publication needs the bureau admin.
    admin = await open_console()
    await admin.login("c_admin")
    await admin.goto(challenge_url)
    await admin.page.get_by_role("button", name="发布").click()
    await expect(admin.page.locator(".flash")).to_contain_text("已发布，编号 3")
    await admin.check("challenge-published")
    await admin.goto(f"/console/challenges?campaign={server['campaign']}")
    await admin.page.get_by_role("button", name="生成挑战手册 PDF").click()
    await expect(admin.page.get_by_role("link", name=re.compile("下载 booklet"))).to_be_visible()
    for path, name in (
        ("/console/admin/users", "admin-users"),
        ("/console/admin/open311", "admin-open311"),
        ("/console/vendors", "admin-vendors"),
    ):
        await admin.goto(path)
        await admin.check(name)


async def test_a_judge_scores_a_proposal(open_console, server):
    judge = await open_console()
    await judge.login("c_judge")
    await judge.goto("/console/judging")
    await judge.check("judging")
    await judge.page.get_by_role("link", name=re.compile("老旧小区加装电梯")).click()
    await judge.page.get_by_role("link", name="电梯加装协商平台").click()
    await judge.page.get_by_label("可行性 分数").fill("80")
    await judge.page.get_by_label("创新性 分数").fill("90")
    await judge.page.get_by_label("总体意见").fill("方案可行，建议先在一个街道试点。")
    await judge.page.get_by_role("button", name="提交评分").click()
    await expect(judge.page.locator(".flash")).to_contain_text("评分已提交")
    await expect(judge.page.locator("main")).to_contain_text("平均加权分 85.00")
    await judge.check("proposal-scored")


async def test_a_vendor_submits_a_proposal(open_console, server):
    visitor = await open_console()
    await visitor.goto("/console/vendor/register")
    await visitor.page.get_by_label("统一社会信用代码（18 位）").fill("913401005830192080")
    await visitor.page.get_by_label("企业名称").fill("测试科技")
    await visitor.page.get_by_label("联系人").fill("钱")
    await visitor.page.get_by_label("联系电话").fill("0551-1234567")
    await visitor.page.get_by_label("登录用户名").fill("newvendor")
    await visitor.page.get_by_label("密码（至少 10 位）").fill("a-long-password")
    visitor.expect_errors = True  # the form answers 400 with its errors
    await visitor.page.get_by_role("button", name="注册").click()
    await expect(visitor.page.locator("#e-uscc")).to_contain_text("校验位")
    await visitor.check("vendor-register")

    vendor = await open_console()
    await vendor.login("c_vendor")
    await vendor.goto("/console/vendor")
    await vendor.check("vendor-home")
    await vendor.page.get_by_role("link", name="提交方案").first.click()
    await vendor.page.get_by_label("方案标题").fill("医院停车预约小程序")
    await vendor.page.get_by_label("摘要").fill("就诊预约时同步预约车位。")
    await vendor.page.get_by_label("正文").fill("与医院 HIS 对接，按就诊时段分配车位。")
    await vendor.page.get_by_role("button", name="提交方案").click()
    await expect(vendor.page.locator(".flash")).to_contain_text("方案已提交")
    await expect(vendor.page.locator("main")).to_contain_text("第 1 版")
    await vendor.check("vendor-proposal")


async def test_an_operator_edits_opening_hours_with_a_preview(open_console, server):
    operator = await open_console()
    await operator.login("c_operator")
    await operator.goto("/console/venues")
    await operator.check("venues")
    await operator.page.get_by_role("link", name="荷叶地羽毛球馆").click()
    hours = operator.page.locator("#f-opening_hours")
    await hours.fill("Mo-Su 06:30-22:30; PH 09:00-12:00")
    preview = operator.page.locator("#hours-preview")
    await expect(preview).to_contain_text("06:30–22:30")
    await expect(preview).to_contain_text("下次变化")
    await hours.fill("Mo-Su 25:00")
    await expect(preview).to_contain_text("格式有误")
    await hours.fill("Mo-Su 06:30-22:30; PH 09:00-12:00")
    await expect(preview).to_contain_text("06:30–22:30")
    await operator.check("venue-hours")
    await operator.page.get_by_role("button", name="保存").click()
    await expect(operator.page.locator(".flash")).to_contain_text("已保存")
    await expect(hours).to_have_value("Mo-Su 06:30-22:30; PH 09:00-12:00")
    await operator.goto(f"/console/venues/{server['court']}/bookings")
    await operator.check("venue-bookings")
    await operator.goto(f"/console/venues/{server['parking']}/parking")
    await expect(operator.page.locator("html[data-charts-ready='1']")).to_have_count(1)
    await operator.check("venue-parking")


def _sheet(rows: list[list[str]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(["社区", "地址", "与户主关系", "姓名", "身份证号", "电话", "标签", "备注"])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _upload(console: Console, name: str, data: bytes) -> None:
    page = console.page
    await console.goto("/console/residents/import")
    await page.get_by_label("表格文件（XLSX 或 CSV）").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}]
    )
    await page.get_by_role("button", name="上传并导入").click()


async def test_a_street_worker_imports_fixes_the_bad_rows_and_sees_the_residents(
    open_console, server, tmp_path
):
    worker = await open_console()
    await worker.login("c_street")
    page = worker.page
    await page.get_by_role("link", name="居民信息").first.click()
    await expect(page.locator("h1")).to_have_text("居民信息")
    await expect(page.locator("table")).to_contain_text("张建国")
    await worker.check("residents")

    # A sheet with two bad rows: a wrong check digit, a phone that is no phone.
    ids = [id_for("340104", date(1940 + n, 3, 1), 71 + 2 * n) for n in range(4)]
    wrong = ids[2][:-1] + ("1" if ids[2][-1] != "1" else "2")
    rows = [
        ["荷叶地社区", "荷叶地路 30 号", "户主", "孙大伟", ids[0], "13800000030", "独居老人", ""],
        ["荷叶地社区", "荷叶地路 30 号", "配偶", "周美兰", ids[1], "", "", ""],
        ["西园新村社区", "西园路 5 号", "户主", "吴志强", wrong, "", "", ""],
        ["西园新村社区", "西园路 6 号", "户主", "郑小红", ids[3], "12345", "", ""],
    ]
    await _upload(worker, "居民.xlsx", _sheet(rows))
    job = page.locator("#import-job .task")
    await expect(job).to_contain_text("导入 居民.xlsx")  # the progress, polled by htmx
    await expect(job).to_contain_text("失败 2 行")
    await expect(job).to_contain_text("新增 2 人")
    failed = job.locator("table")
    await expect(failed).to_contain_text("身份证号校验位不正确")
    await expect(failed).to_contain_text("电话应为 11 位手机号")
    await worker.check("residents-import")

    # The error sheet: the bad rows as uploaded, with what to fix.
    async with page.expect_download() as download:
        await page.get_by_role("link", name=re.compile("下载错误行表")).click()
    saved = tmp_path / "errors.xlsx"
    await (await download.value).save_as(saved)
    sheet = load_workbook(saved).active
    errors = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert errors[0][-1] == "错误" and [r[3] for r in errors[1:]] == ["吴志强", "郑小红"]

    # Fix the phone in the sheet and upload it again (the 错误 column is ignored).
    fixed = [[*r[:8]] for r in errors[1:] if r[3] == "郑小红"]
    fixed[0][5] = "0551-65550066"
    await _upload(worker, "居民-改正.xlsx", _sheet(fixed))
    await expect(job).to_contain_text("新增 1 人")
    await expect(job).to_contain_text("失败 0 行")

    # Fix the other one through the entry form: the inline check first refuses, then tells.
    await worker.goto("/console/residents/new")
    await page.get_by_label("姓名").fill("吴志强")
    number = page.get_by_label("身份证号")
    await number.fill(wrong)
    check = page.locator("#id-check")
    await expect(check).to_contain_text("身份证号：身份证号校验位不正确")
    await number.fill(ids[2])
    await expect(check).to_contain_text("出生日期 1942-03-01")
    await expect(check).to_contain_text("性别 男")
    await page.get_by_label("社区").fill("西园新村社区")
    await page.get_by_label("户地址").fill("西园路 5 号")
    await page.get_by_label("与户主关系").select_option("head")
    await worker.check("resident-new")
    await page.get_by_role("button", name="登记").click()
    await expect(page.locator(".flash")).to_contain_text("已登记")
    await expect(page.locator("h1")).to_have_text("吴志强")
    await worker.check("resident")

    # A clear value needs a reason and is logged; the household shows its members.
    await page.get_by_label("查看身份证号的理由").fill("核对身份信息")
    await page.get_by_role("button", name="查看身份证号明文").click()
    await expect(page.locator("#reveal-id_number")).to_contain_text(ids[2])
    await page.get_by_role("link", name="西园路 5 号").click()
    await expect(page.locator("h1")).to_have_text("户：西园路 5 号")
    await worker.check("household")

    # Everyone is in the list now, and a form opens pre-filled.
    await worker.goto("/console/residents")
    table = page.locator("table")
    for name in ("孙大伟", "周美兰", "吴志强", "郑小红", "张建国"):
        await expect(table).to_contain_text(name)
    await page.get_by_role("link", name="孙大伟").click()
    await page.get_by_role("link", name="走访记录").click()
    await expect(page.locator("#b-name")).to_have_value("孙大伟")
    await expect(page.locator("#b-phone")).to_have_value("138****0030")
    await worker.check("resident-form")
