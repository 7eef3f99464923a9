"""One confirmation pattern for irreversible steps (issue 17): a POST form that approves, rejects, pays,
closes, reverses, disables or opens something carries data-confirm (voucher/static/confirm.js asks
before it is sent; keyboard-accessible, a native dialog, no inline script under the CSP). Found by
reading the templates, so a new button of such a kind without a question fails here."""
from __future__ import annotations

import re

from voucher import PROJECT_ROOT

#: words on a button that make its step irreversible or consequential
DESTRUCTIVE = re.compile(r"审批通过|批准|驳回|不予|准予|撤销|停用|结束|退回|开奖|开放领取|开放报名|暂停|结账|重新开放|"
                         r"关闭两步验证|拨付|已支付|推送|作废|重新导出|生成付款文件|重置|下线|删除")
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
BUTTON = re.compile(r"<button\b[^>]*>(.*?)</button>", re.S)
POST_BUTTON = re.compile(r"post_button\((.*?)\)\s*}}", re.S)


def _forms():
    for path in sorted((PROJECT_ROOT / "templates").rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in FORM.finditer(text):
            attributes, body = match.groups()
            if 'method="post"' not in attributes:
                continue
            labels = [re.sub(r"<[^>]+>|{[{%].*?[%}]}", "", b).strip() for b in BUTTON.findall(body)]
            yield path.relative_to(PROJECT_ROOT), labels, "data-confirm" in attributes
        for match in POST_BUTTON.finditer(text):
            if "macro post_button" in text[max(0, match.start() - 20):match.start()]:
                continue
            call = match.group(1)
            labels = re.findall(r"'([^']*)'", call)
            yield path.relative_to(PROJECT_ROOT), labels, "confirm=" in call


def test_every_irreversible_post_asks_first():
    missing = [f"{path}: {labels}" for path, labels, confirms in _forms()
               if any(DESTRUCTIVE.search(label) for label in labels) and not confirms]
    assert missing == []


def test_the_question_script_is_on_every_page():
    base = (PROJECT_ROOT / "templates" / "base.html").read_text(encoding="utf-8")
    assert "filename='confirm.js'" in base
    # once: a page that loaded it again would ask every question twice
    others = [p for p in (PROJECT_ROOT / "templates").rglob("*.html")
              if p.name != "base.html" and "filename='confirm.js'" in p.read_text(encoding="utf-8")]
    assert others == []
