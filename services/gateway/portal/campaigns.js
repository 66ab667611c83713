/* Outreach campaigns with consent (docs/RULES.md § Campaigns): a manager schedules a
   campaign to a segment (SMS through the notifier, or call tasks in the agents' worklist),
   at a time or on a holiday, and reads each campaign's report.

   GET/POST /api/v1/campaigns, GET /api/v1/campaigns/{id}, GET /api/v1/campaigns/holidays.
   Registered through window.HCRM_PAGES (app.js), with the portal's helpers; texts in both
   languages through HCRM_I18N.extend.
*/
(function () {
  "use strict";

  window.HCRM_I18N.extend({
    zh: {
      "nav.campaigns": "关怀营销",
      "camp.title": "关怀与营销活动",
      "camp.consentNote": "只有同意接收营销信息（marketing_consent）且未退订的患者会收到；{start}–{end} 不发送，每人每天最多 {limit} 条。",
      "camp.new": "新建活动",
      "camp.name": "活动名称",
      "camp.channel": "方式",
      "camp.when": "发送时间",
      "camp.at": "指定时间",
      "camp.holiday": "节日问候",
      "camp.segment": "目标人群",
      "camp.department": "科室",
      "camp.daysSinceVisit": "距上次就诊（天）",
      "camp.daysSinceDischarge": "距出院（天）",
      "camp.visitCount": "就诊次数",
      "camp.min": "最少",
      "camp.max": "最多",
      "camp.segmentKind": "客户分级",
      "camp.ageBand": "年龄段",
      "camp.region": "地区",
      "camp.any": "不限",
      "camp.templateZh": "中文内容",
      "camp.templateEn": "英文内容",
      "camp.templateHint": "{name} 会替换为患者姓名。",
      "camp.create": "创建活动",
      "camp.created": "活动已创建：{name}，将于 {when} 发送。",
      "camp.list": "活动列表",
      "camp.sendAt": "发送时间",
      "camp.status": "状态",
      "camp.report": "效果",
      "camp.show": "查看",
      "camp.none": "还没有活动。",
      "camp.reportOf": "活动效果：{name}",
      "channel.sms": "短信",
      "channel.call": "电话回访任务",
      "campstatus.scheduled": "待发送",
      "campstatus.targeting": "筛选中",
      "campstatus.sending": "发送中",
      "campstatus.done": "已完成",
      "cfig.targeted": "目标人数",
      "cfig.excluded_no_consent": "因未同意排除",
      "cfig.excluded_no_phone": "无电话排除",
      "cfig.sent": "已发短信",
      "cfig.calls_created": "已建回访任务",
      "cfig.waiting": "待发送",
      "cfig.returned_within_30d": "30 天内回院",
      "holiday.new_year": "元旦",
      "holiday.spring_festival": "春节",
      "holiday.qingming": "清明节",
      "holiday.labour_day": "劳动节",
      "holiday.dragon_boat": "端午节",
      "holiday.mid_autumn": "中秋节",
      "holiday.national_day": "国庆节",
      "seg.key": "重点客户",
      "seg.regular": "常客",
      "seg.one_time": "一次就诊",
      "seg.registered": "仅建档",
      "seg.prospect": "潜在客户",
      "kind.campaign_call": "活动回访",
    },
    en: {
      "nav.campaigns": "Campaigns",
      "camp.title": "Outreach campaigns",
      "camp.consentNote": "Only patients with marketing consent who have not opted out are reached; nothing is sent {start}–{end}, and at most {limit} per person per day.",
      "camp.new": "New campaign",
      "camp.name": "Name",
      "camp.channel": "Channel",
      "camp.when": "When",
      "camp.at": "At a time",
      "camp.holiday": "Holiday greeting",
      "camp.segment": "Segment",
      "camp.department": "Department",
      "camp.daysSinceVisit": "Days since visit",
      "camp.daysSinceDischarge": "Days since discharge",
      "camp.visitCount": "Visits",
      "camp.min": "min",
      "camp.max": "max",
      "camp.segmentKind": "Segment",
      "camp.ageBand": "Age band",
      "camp.region": "Region",
      "camp.any": "Any",
      "camp.templateZh": "Text (Chinese)",
      "camp.templateEn": "Text (English)",
      "camp.templateHint": "{name} becomes the patient's name.",
      "camp.create": "Create campaign",
      "camp.created": "Campaign created: {name}, sent {when}.",
      "camp.list": "Campaigns",
      "camp.sendAt": "Send at",
      "camp.status": "Status",
      "camp.report": "Report",
      "camp.show": "Show",
      "camp.none": "No campaign yet.",
      "camp.reportOf": "Report: {name}",
      "channel.sms": "SMS",
      "channel.call": "Call tasks",
      "campstatus.scheduled": "Scheduled",
      "campstatus.targeting": "Targeting",
      "campstatus.sending": "Sending",
      "campstatus.done": "Done",
      "cfig.targeted": "Targeted",
      "cfig.excluded_no_consent": "Excluded: no consent",
      "cfig.excluded_no_phone": "Excluded: no phone",
      "cfig.sent": "SMS sent",
      "cfig.calls_created": "Call tasks created",
      "cfig.waiting": "Waiting",
      "cfig.returned_within_30d": "Came back within 30 days",
      "holiday.new_year": "New Year's Day",
      "holiday.spring_festival": "Spring Festival",
      "holiday.qingming": "Qingming",
      "holiday.labour_day": "Labour Day",
      "holiday.dragon_boat": "Dragon Boat Festival",
      "holiday.mid_autumn": "Mid-Autumn Festival",
      "holiday.national_day": "National Day",
      "seg.key": "Key",
      "seg.regular": "Regular",
      "seg.one_time": "One visit",
      "seg.registered": "Registered",
      "seg.prospect": "Prospect",
      "kind.campaign_call": "Campaign call",
    },
  });

  const FIGURES = ["targeted", "excluded_no_consent", "excluded_no_phone", "sent", "calls_created", "waiting",
                   "returned_within_30d"];
  const SEGMENTS = ["key", "regular", "one_time", "registered", "prospect"];
  const AGE_BANDS = ["0-17", "18-39", "40-59", "60-79", "80+"];
  const OFFSET = "+08:00"; // the hospital's zone (Asia/Shanghai, app.js TZ) has no summer time

  let selected = null; // the campaign whose report is shown

  async function campaignsView(view, arg, claims, kit) {
    const { h, api, t, tv } = kit;
    const notice = h("p", { class: "muted", id: "camp-consent-note" });
    const rows = h("tbody", { id: "camp-rows" });
    const reportBox = h("section", { class: "card", id: "camp-report", hidden: true });
    const refresh = h("button", { type: "button", id: "camp-refresh", class: "secondary",
                                  onclick: () => load().catch(kit.showError) }, t("common.refresh"));
    view.append(h("div", { class: "view-head" }, h("h1", {}, t("camp.title")), refresh), notice,
                await form(kit, () => load()),
                h("section", { class: "card" }, h("h2", {}, t("camp.list")),
                  h("div", { class: "table-scroll" }, h("table", { class: "grid-table", id: "camp-table" },
                    h("thead", {}, h("tr", {}, ["camp.name", "camp.channel", "camp.sendAt", "camp.status", "camp.report"]
                      .map((k) => h("th", {}, t(k))))), rows))),
                reportBox);

    async function showReport(campaignId) {
      selected = campaignId;
      const r = await api("GET", `/api/v1/campaigns/${kit.enc(campaignId)}`);
      reportBox.hidden = false;
      reportBox.replaceChildren(
        h("h2", {}, t("camp.reportOf", { name: r.name })),
        h("p", { class: "muted" }, `${tv("channel", r.channel)} · ${kit.fmtDateTime(r.send_at)} · `,
          h("span", { class: "tag", id: "camp-report-status" }, tv("campstatus", r.status))),
        h("div", { class: "figures", id: "camp-figures" }, FIGURES.map((key) =>
          h("div", { class: "figure", "data-figure": key },
            h("span", { class: "figure-label" }, t(`cfig.${key}`)),
            h("span", { class: "figure-value" }, String(r[key] === undefined ? 0 : r[key]))))));
      view.dataset.reportOf = campaignId;
    }

    async function load() {
      const body = await api("GET", "/api/v1/campaigns?limit=100");
      const rules = body.rules || {};
      notice.textContent = t("camp.consentNote", { start: rules.quiet_start, end: rules.quiet_end,
                                                   limit: rules.daily_limit });
      rows.replaceChildren();
      for (const c of body.items) {
        rows.append(h("tr", { "data-campaign-id": c.campaign_id, "data-status": c.status },
          h("td", {}, c.name, c.holiday ? h("span", { class: "tag kind" }, " ", tv("holiday", c.holiday)) : null),
          h("td", {}, tv("channel", c.channel)),
          h("td", {}, kit.fmtDateTime(c.send_at)),
          h("td", {}, h("span", { class: "tag" }, tv("campstatus", c.status))),
          h("td", {}, h("button", { type: "button", class: "secondary camp-show",
                                    onclick: () => showReport(c.campaign_id).catch(kit.showError) }, t("camp.show")))));
      }
      if (!body.items.length) rows.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("camp.none"))));
      if (selected) await showReport(selected);
      view.dataset.loadedAt = String(Date.now());
    }
    await load();
  }

  async function form(kit, reload) {
    const { h, api, t, tv } = kit;
    const holidays = (await api("GET", "/api/v1/campaigns/holidays")).items;
    const input = (id, attrs) => h("input", { id, ...attrs });
    const range = (id) => h("span", { class: "inline" },
      h("label", { for: `${id}-min` }, t("camp.min")), input(`${id}-min`, { type: "number", min: 0, step: 1, class: "num" }),
      h("label", { for: `${id}-max` }, t("camp.max")), input(`${id}-max`, { type: "number", min: 0, step: 1, class: "num" }));
    const choice = (id, prefix, values) => h("select", { id },
      h("option", { value: "" }, t("camp.any")), values.map((v) => h("option", { value: v }, prefix ? tv(prefix, v) : v)));
    const name = input("camp-name", { required: true, maxlength: 100 });
    const channel = h("select", { id: "camp-channel" }, ["sms", "call"].map((c) => h("option", { value: c }, tv("channel", c))));
    const whenKind = h("select", { id: "camp-when" }, h("option", { value: "at" }, t("camp.at")),
                       h("option", { value: "holiday" }, t("camp.holiday")));
    const at = input("camp-send-at", { type: "datetime-local", value: `${kit.todayISO()}T10:00` });
    const holiday = h("select", { id: "camp-holiday", hidden: true }, holidays.map((item) =>
      h("option", { value: item.holiday }, `${tv("holiday", item.holiday)} ${item.date}`)));
    whenKind.addEventListener("change", () => {
      at.hidden = whenKind.value !== "at";
      holiday.hidden = whenKind.value !== "holiday";
    });
    const department = input("camp-department", { maxlength: 100 });
    const segment = choice("camp-segment", "seg", SEGMENTS);
    const ageBand = choice("camp-age-band", null, AGE_BANDS);
    const region = input("camp-region", { maxlength: 100 });
    const zh = h("textarea", { id: "camp-template-zh", rows: 2, maxlength: 500, required: true });
    const en = h("textarea", { id: "camp-template-en", rows: 2, maxlength: 500, required: true });
    const field = (label, id, control) => h("div", { class: "camp-field" }, h("label", { for: id }, t(label)), control);

    function bounds(id) {
      const out = {};
      for (const side of ["min", "max"]) {
        const value = kit.$(`#${id}-${side}`).value;
        if (value !== "") out[side] = Number(value);
      }
      return Object.keys(out).length ? out : null;
    }

    async function submit(e) {
      e.preventDefault();
      const seg = {};
      if (department.value.trim()) seg.department = department.value.trim();
      for (const [key, id] of [["days_since_visit", "camp-dsv"], ["days_since_discharge", "camp-dsd"],
                               ["visit_count", "camp-visits"]]) {
        const b = bounds(id);
        if (b) seg[key] = b;
      }
      if (segment.value) seg.segment = segment.value;
      if (ageBand.value) seg.age_band = ageBand.value;
      if (region.value.trim()) seg.region = region.value.trim();
      const body = { name: name.value.trim(), channel: channel.value, segment: seg,
                     template: { zh: zh.value, en: en.value } };
      if (whenKind.value === "holiday") body.holiday = holiday.value;
      else body.send_at = `${at.value.length === 16 ? at.value + ":00" : at.value}${OFFSET}`;
      try {
        const created = await api("POST", "/api/v1/campaigns", body);
        selected = created.campaign_id;
        kit.showInfo(t("camp.created", { name: created.name, when: kit.fmtDateTime(created.send_at) }));
        await reload();
      } catch (err) {
        kit.showError(err);
      }
    }

    return h("form", { class: "card camp-form", id: "camp-form", onsubmit: submit },
      h("h2", {}, t("camp.new")),
      h("div", { class: "camp-grid" },
        field("camp.name", "camp-name", name),
        field("camp.channel", "camp-channel", channel),
        field("camp.when", "camp-when", h("span", { class: "inline" }, whenKind, at, holiday))),
      h("h3", {}, t("camp.segment")),
      h("div", { class: "camp-grid" },
        field("camp.department", "camp-department", department),
        field("camp.daysSinceVisit", "camp-dsv-min", range("camp-dsv")),
        field("camp.daysSinceDischarge", "camp-dsd-min", range("camp-dsd")),
        field("camp.visitCount", "camp-visits-min", range("camp-visits")),
        field("camp.segmentKind", "camp-segment", segment),
        field("camp.ageBand", "camp-age-band", ageBand),
        field("camp.region", "camp-region", region)),
      h("div", { class: "camp-grid" },
        field("camp.templateZh", "camp-template-zh", zh),
        field("camp.templateEn", "camp-template-en", en)),
      h("p", { class: "muted" }, t("camp.templateHint")),
      h("button", { type: "submit", id: "camp-create" }, t("camp.create")));
  }

  window.HCRM_PAGES = (window.HCRM_PAGES || []).concat([
    { name: "campaigns", label: "nav.campaigns", rank: 2, after: "dashboard", view: campaignsView },
  ]);
})();
