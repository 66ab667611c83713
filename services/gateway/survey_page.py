"""The public service-quality survey page (routes/survey.py), rendered on the server in Chinese
or English: a form with no script, no external asset and no link anywhere but to itself in
the other language. It shows what the patient needs to know which visit they rate (the
department and the day) and nothing about the person.

Its only style sheet is inline; the page's Content-Security-Policy allows exactly that sheet
by its SHA-256, so nothing else can run or load even if some text got through escaping.
"""

import base64
import hashlib
import html

CSS = (
    'body{font-family:"Noto Sans CJK SC","PingFang SC",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}'
    "main{max-width:560px;margin:0 auto;padding:20px;background:#fff;min-height:100vh}"
    "h1{font-size:1.4em}fieldset{border:1px solid #d0d7de;border-radius:6px;margin:12px 0;padding:8px 12px}"
    "legend{font-weight:bold}label{display:inline-block;margin:6px 10px 6px 0;white-space:nowrap}"
    "button{font-size:1.1em;padding:8px 24px;background:#1f6feb;color:#fff;border:0;border-radius:6px}"
    ".lang{float:right}.error{color:#cf222e;font-weight:bold}.muted{color:#57606a;font-size:.9em}"
)
CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    + "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}

TEXT = {
    "zh": {
        "lang_name": "中文",
        "html_lang": "zh-CN",
        "other": "en",
        "switch": "English",
        "title": "服务满意度调查",
        "intro": "感谢您到{department}就诊（{date}）。请为本次就诊的各项服务打分：1 分为很不满意，5 分为很满意。"
        "可以只评其中几项。",
        "scale": {1: "1 很不满意", 2: "2 不满意", 3: "3 一般", 4: "4 满意", 5: "5 很满意"},
        "submit": "提交评价",
        "note": "本链接仅可提交一次，{expires} 前有效。",
        "thanks_title": "感谢您的评价",
        "thanks": "您的评价已收到，我们会据此改进服务。",
        "used_title": "此链接已使用",
        "used": "此问卷已经提交过，感谢您的评价。",
        "expired_title": "此链接已过期",
        "expired": "此问卷的有效期已过。如有意见，请致电医院客服中心。",
        "unknown_title": "链接无效",
        "unknown": "未找到此问卷，请检查链接是否完整。",
        "error_none": "请至少为一项打分后再提交。",
        "error_bad": "评分须为 1 到 5 分，请重新选择。",
        "busy_title": "请稍后再试",
        "busy": "请求过于频繁，请稍后再试。",
        "down_title": "暂时无法访问",
        "down": "服务暂时不可用，请稍后再试。",
        "department_unknown": "本院",
    },
    "en": {
        "lang_name": "English",
        "html_lang": "en",
        "other": "zh",
        "switch": "中文",
        "title": "Service satisfaction survey",
        "intro": "Thank you for your visit to {department} ({date}). Please rate each part of our service: "
        "1 is very dissatisfied, 5 is very satisfied. You may rate only some of them.",
        "scale": {
            1: "1 Very dissatisfied",
            2: "2 Dissatisfied",
            3: "3 Neutral",
            4: "4 Satisfied",
            5: "5 Very satisfied",
        },
        "submit": "Send",
        "note": "This link can be used once and is valid until {expires}.",
        "thanks_title": "Thank you",
        "thanks": "We have received your answer and will use it to improve.",
        "used_title": "This link has been used",
        "used": "This survey has already been answered. Thank you.",
        "expired_title": "This link has expired",
        "expired": "This survey is closed. Please call the hospital's service center with any comments.",
        "unknown_title": "Invalid link",
        "unknown": "No such survey: please check that the link is complete.",
        "error_none": "Please rate at least one item before sending.",
        "error_bad": "Each rating is a number from 1 to 5: please choose again.",
        "busy_title": "Please try again later",
        "busy": "Too many requests: please try again in a minute.",
        "down_title": "Temporarily unavailable",
        "down": "The service is unavailable: please try again later.",
        "department_unknown": "our hospital",
    },
}


def language(query_lang, accept_language):
    """?lang= wins; else the browser's first preference if it is English; else Chinese."""
    if query_lang in TEXT:
        return query_lang
    first = (accept_language or "").split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


def _page(lang, title, body):
    text = TEXT[lang]
    e = html.escape
    return (
        f'<!doctype html><html lang="{text["html_lang"]}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>"
        f'<a class="lang" href="?lang={text["other"]}" hreflang="{text["other"]}">{e(text["switch"])}</a>'
        f"<h1>{e(title)}</h1>{body}</main></body></html>"
    )


def form(lang, survey, error=None, chosen=None):
    """The questionnaire of an open link: `survey` is followup's survey_form answer."""
    text = TEXT[lang]
    e = html.escape
    chosen = chosen or {}
    fields = []
    for item in survey["items"]:
        key = item["key"]
        options = "".join(
            f'<label><input type="radio" name="{e(key)}" value="{n}"'
            f"{' checked' if chosen.get(key) == n else ''}> {e(text['scale'][n])}</label>"
            for n in range(1, 6)
        )
        fields.append(f"<fieldset><legend>{e(item.get(lang) or key)}</legend>{options}</fieldset>")
    intro = text["intro"].format(
        department=e(survey.get("department") or text["department_unknown"]),
        date=e(survey.get("visit_date") or ""),
    )
    expires = e((survey.get("expires_at") or "")[:10])
    body = (
        f"<p>{intro}</p>"
        + (f'<p class="error" role="alert">{e(error)}</p>' if error else "")
        + f'<form method="post">{"".join(fields)}<button type="submit">{e(text["submit"])}</button></form>'
        + f'<p class="muted">{e(text["note"].format(expires=expires))}</p>'
    )
    return _page(lang, text["title"], body)


def message(lang, kind):
    """A page with one message: thanks, used, expired, unknown, busy or down."""
    text = TEXT[lang]
    return _page(lang, text[f"{kind}_title"], f"<p>{html.escape(text[kind])}</p>")


STATUS = {"thanks": 200, "used": 410, "expired": 410, "unknown": 404, "busy": 429, "down": 503}
