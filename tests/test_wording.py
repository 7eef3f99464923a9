"""One glossary on the pages (issue 17, docs/design.md "Words on the pages"): every approval is 批准 and
every refusal with a reason 驳回, a rule reads 满10万减3000, and the site has an icon."""
from __future__ import annotations

import re

from voucher import PROJECT_ROOT

#: words the glossary replaced, and what says it now
RETIRED = {"审批通过": "批准", "准予入驻": "批准入驻", "不予入驻": "驳回", "不予补贴": "驳回", "退回修改": "驳回",
           "批准生效": "批准"}


def test_the_pages_use_the_glossary_verbs():
    pattern = re.compile("|".join(RETIRED))
    found = [f"{path.relative_to(PROJECT_ROOT)}:{n}: {match.group(0)} (say {RETIRED[match.group(0)]})"
             for folder in ("templates", "voucher")
             for path in (PROJECT_ROOT / folder).rglob("*.*") if path.suffix in (".html", ".py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if not line.lstrip().startswith("#")
             for match in pattern.finditer(line)]
    assert found == []


def test_the_site_has_an_icon(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in page
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<title>" in icon.data
