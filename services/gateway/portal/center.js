/* The center's own work (docs/RULES.md § Agents, § Service quality): the agents' figures
   against their targets, the quarterly assessment and the survey figures.

   A manager sees every agent and the team (GET /api/v1/analytics/agents); an agent sees
   their own line only (GET /api/v1/analytics/agents/me: the gateway takes the agent from the
   token, never from the page). Registered through window.HCRM_PAGES (app.js), with the
   portal's helpers; texts in both languages through HCRM_I18N.extend.
*/
(function () {
  "use strict";

  window.HCRM_I18N.extend({
    zh: {
      "nav.agents": "客服考核",
      "agents.title": "客服考核",
      "agents.mine": "我的工作量与考核",
      "agents.from": "从",
      "agents.to": "到",
      "agents.apply": "查询",
      "agents.agent": "客服专员",
      "agents.team": "团队合计",
      "agents.targets": "考核",
      "agents.targetsLine": "目标：{list}",
      "agents.verdict": "达标 {met} · 未达标 {missed}",
      "agents.met": "达标",
      "agents.missed": "未达标",
      "agents.none": "此期间无工作记录。",
      "agents.report": "季度考核报告",
      "agents.quarter": "季度",
      "agents.format": "格式",
      "agents.open": "打开",
      "agents.quality": "服务质量（满意度调查）",
      "agents.answers": "答卷 {n} 份（通话中 {call} · 短信链接 {link}），低分 {low} 份",
      "agents.item": "项目",
      "agents.count": "评分数",
      "agents.average": "平均分",
      "agents.overall": "总体",
      "agents.byDepartment": "按科室",
      "agents.department": "科室",
      "agents.answersCol": "答卷",
      "agents.teamCompletion": "团队回访完成率：{value}",
      "afig.calls": "通话量",
      "afig.reached": "接通",
      "afig.unreachable": "未接通",
      "afig.declined": "拒访",
      "afig.reach_rate": "接通率",
      "afig.on_time_rate": "按时完成率",
      "afig.avg_satisfaction": "患者满意度",
      "afig.complaints_resolved": "处理投诉",
      "afig.complaints_resolved_in_sla_rate": "投诉按时解决率",
      "afig.consultations": "咨询接待",
      "afig.conversions": "咨询转化",
      "afig.conversion_rate": "咨询转化率",
      "afig.followup_completion_rate": "回访完成率",
      "item.doctor": "医生",
      "item.nurse": "护士",
      "item.environment": "就诊环境",
      "item.waiting": "候诊时间",
      "item.process": "就诊流程",
    },
    en: {
      "nav.agents": "Agents",
      "agents.title": "Agents' assessment",
      "agents.mine": "My work and assessment",
      "agents.from": "From",
      "agents.to": "To",
      "agents.apply": "Show",
      "agents.agent": "Agent",
      "agents.team": "Team",
      "agents.targets": "Targets",
      "agents.targetsLine": "Targets: {list}",
      "agents.verdict": "met {met} · missed {missed}",
      "agents.met": "met",
      "agents.missed": "missed",
      "agents.none": "No work recorded in this period.",
      "agents.report": "Quarterly assessment report",
      "agents.quarter": "Quarter",
      "agents.format": "Format",
      "agents.open": "Open",
      "agents.quality": "Service quality (surveys)",
      "agents.answers": "{n} answers ({call} during calls · {link} by link), {low} with a low item",
      "agents.item": "Item",
      "agents.count": "Scores",
      "agents.average": "Mean",
      "agents.overall": "Overall",
      "agents.byDepartment": "By department",
      "agents.department": "Department",
      "agents.answersCol": "Answers",
      "agents.teamCompletion": "Team follow-up completion: {value}",
      "afig.calls": "Calls",
      "afig.reached": "Reached",
      "afig.unreachable": "No answer",
      "afig.declined": "Declined",
      "afig.reach_rate": "Reach rate",
      "afig.on_time_rate": "On time",
      "afig.avg_satisfaction": "Satisfaction",
      "afig.complaints_resolved": "Complaints resolved",
      "afig.complaints_resolved_in_sla_rate": "Resolved within SLA",
      "afig.consultations": "Inquiries",
      "afig.conversions": "Converted",
      "afig.conversion_rate": "Conversion rate",
      "afig.followup_completion_rate": "Follow-up completion",
      "item.doctor": "Doctor",
      "item.nurse": "Nurse",
      "item.environment": "Environment",
      "item.waiting": "Waiting time",
      "item.process": "Process",
    },
  });

  const COLUMNS = [["calls", "count"], ["reached", "count"], ["unreachable", "count"], ["declined", "count"],
                   ["reach_rate", "rate"], ["on_time_rate", "rate"], ["avg_satisfaction", "score"],
                   ["complaints_resolved", "count"], ["complaints_resolved_in_sla_rate", "rate"],
                   ["consultations", "count"], ["conversions", "count"]];
  const KINDS = Object.fromEntries(COLUMNS.concat([["conversion_rate", "rate"], ["followup_completion_rate", "rate"]]));

  function shown(value, kind, none) {
    if (value === null || value === undefined) return none;
    if (kind === "rate") return (value * 100).toFixed(1) + "%";
    if (kind === "score") return Number(value).toFixed(2);
    return String(value);
  }

  function quarterOf(iso) {
    const [y, m] = iso.split("-").map(Number);
    return `${y}-Q${Math.floor((m - 1) / 3) + 1}`;
  }

  function quarterStart(iso) {
    const [y, m] = iso.split("-").map(Number);
    return `${y}-${String(3 * Math.floor((m - 1) / 3) + 1).padStart(2, "0")}-01`;
  }

  let range = null;

  async function agentsView(view, arg, claims, kit) {
    const { h, api, t, enc } = kit;
    const manager = kit.rankOf(claims) >= 2;
    range = range || { from: quarterStart(kit.todayISO()), to: kit.todayISO() };
    const from = h("input", { type: "date", id: "agents-from", value: range.from, required: true });
    const to = h("input", { type: "date", id: "agents-to", value: range.to, required: true });
    const tbody = h("tbody", { id: "agents-rows" });
    const targetsLine = h("p", { class: "muted", id: "agents-targets" });
    const completion = h("p", { id: "team-completion" });
    const head = h("tr", {}, h("th", {}, t("agents.agent")), COLUMNS.map(([key]) => h("th", {}, t(`afig.${key}`))),
                   h("th", {}, t("agents.targets")));
    view.append(
      h("div", { class: "view-head" }, h("h1", {}, t(manager ? "agents.title" : "agents.mine")),
        h("form", { class: "inline", id: "agents-form", onsubmit: (e) => {
          e.preventDefault();
          range = { from: from.value, to: to.value };
          kit.showInfo(null);
          load();
        } },
          h("label", { for: "agents-from" }, t("agents.from")), from,
          h("label", { for: "agents-to" }, t("agents.to")), to,
          h("button", { type: "submit", id: "agents-apply" }, t("agents.apply")))),
      targetsLine,
      h("div", { class: "table-scroll" }, h("table", { class: "grid-table", id: "agents-table" }, h("thead", {}, head), tbody)),
      manager ? completion : null);
    const quality = h("section", { class: "card", id: "quality" });
    if (manager) view.append(reportSection(kit), quality);

    function line(item, team) {
      const verdicts = item.assessment || {};
      const values = Object.values(verdicts);
      const met = values.filter((v) => v === "met").length;
      const missed = values.filter((v) => v === "missed").length;
      return h("tr", { class: team ? "team-row" : "agent-row", id: team ? "team-row" : null,
                       "data-agent": team ? null : item.agent, "data-missed": String(missed) },
        h("th", { scope: "row" }, team ? t("agents.team") : item.agent),
        COLUMNS.map(([key, kind]) => {
          const verdict = verdicts[key];
          return h("td", { "data-figure": key, class: verdict ? `cell-${verdict}` : null,
                           title: verdict ? t(`agents.${verdict}`) : null },
            shown(item[key], kind, t("common.none")), verdict === "missed" ? " ✗" : verdict === "met" ? " ✓" : "");
        }),
        h("td", { class: "verdict" }, h("span", { class: missed ? "tag danger" : "tag met" },
          t("agents.verdict", { met, missed }))));
    }

    async function load() {
      const q = `from=${enc(range.from)}&to=${enc(range.to)}`;
      const body = await api("GET", manager ? `/api/v1/analytics/agents?${q}` : `/api/v1/analytics/agents/me?${q}`);
      tbody.replaceChildren();
      // The follow-up completion target is the team's: tasks are due for the center, not one agent.
      const targets = Object.entries(body.targets || {}).filter(([key]) => manager || key !== "followup_completion_rate");
      targetsLine.textContent = t("agents.targetsLine", { list: targets.map(
        ([key, value]) => `${t(`afig.${key}`)} ≥ ${shown(value, KINDS[key] || "rate", "")}`).join(" · ") });
      for (const item of body.items) tbody.append(line(item, false));
      if (!body.items.length) tbody.append(h("tr", {}, h("td", { colspan: COLUMNS.length + 2, class: "empty" }, t("agents.none"))));
      if (manager && body.team) {
        tbody.append(line(body.team, true));
        const verdict = (body.team.assessment || {}).followup_completion_rate;
        completion.className = verdict ? `cell-${verdict}` : "";
        completion.textContent = t("agents.teamCompletion", { value: shown(body.team.followup_completion_rate, "rate",
          t("common.none")) + (verdict === "met" ? " ✓" : verdict === "missed" ? " ✗" : "") });
      }
      if (manager) await drawQuality(kit, quality, q);
      view.dataset.loadedAt = String(Date.now());
    }
    await load();
  }

  async function drawQuality(kit, box, q) {
    const { h, api, t } = kit;
    const body = await api("GET", `/api/v1/analytics/quality?${q}`);
    const none = t("common.none");
    const itemRow = (label, row) => h("tr", { "data-item": row.item || "overall" }, h("td", {}, label),
      h("td", {}, String(row.count)), h("td", {}, shown(row.average, "score", none)));
    box.replaceChildren(
      h("h2", {}, t("agents.quality")),
      h("p", { class: "muted", id: "quality-answers" }, t("agents.answers", {
        n: body.answers, call: body.by_channel.call, link: body.by_channel.link, low: body.low_answers })),
      h("table", { class: "grid-table", id: "quality-items" },
        h("thead", {}, h("tr", {}, ["agents.item", "agents.count", "agents.average"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, itemRow(t("agents.overall"), body.overall),
          body.items.map((row) => itemRow(kit.tv("item", row.item), row)))),
      h("h3", {}, t("agents.byDepartment")),
      h("table", { class: "grid-table", id: "quality-departments" },
        h("thead", {}, h("tr", {}, h("th", {}, t("agents.department")), h("th", {}, t("agents.answersCol")),
          h("th", {}, t("agents.average")))),
        h("tbody", {}, body.by_department.length ? body.by_department.map((d) => h("tr", {},
          h("td", {}, d.department), h("td", {}, String(d.answers)), h("td", {}, shown(d.overall.average, "score", none))))
          : h("tr", {}, h("td", { colspan: 3, class: "empty" }, t("common.empty"))))));
  }

  function reportSection(kit) {
    const { h, t, enc } = kit;
    const quarter = h("input", { id: "agents-quarter", value: quarterOf(kit.todayISO()), pattern: "[0-9]{4}-Q[1-4]",
                                 size: 8, required: true });
    const format = h("select", { id: "agents-format" }, ["html", "csv", "json"].map((f) => h("option", { value: f }, f.toUpperCase())));
    const output = h("div", { class: "report-output", id: "agents-report-output" });

    async function open() {
      const f = format.value;
      const tab = f === "csv" ? null : window.open("", "_blank");  // while the click counts as a gesture
      try {
        const url = await kit.fetchReport(`/api/v1/analytics/reports/agents?quarter=${enc(quarter.value)}&format=${enc(f)}`,
                                          `agents-assessment-${quarter.value}.${f}`, output);
        if (tab) kit.showInTab(tab, url);
        else kit.$(".report-download", output).click();
      } catch (err) {
        if (tab) tab.close();
        kit.showError(err);
      }
    }

    return h("section", { class: "card reports", id: "agents-report" },
      h("h2", {}, t("agents.report")),
      h("div", { class: "inline" }, h("label", { for: "agents-quarter" }, t("agents.quarter")), quarter,
        h("label", { for: "agents-format" }, t("agents.format")), format,
        h("button", { type: "button", id: "agents-report-open", onclick: open }, t("agents.open"))),
      output);
  }

  window.HCRM_PAGES = (window.HCRM_PAGES || []).concat([
    { name: "agents", label: "nav.agents", rank: 1, after: "patients", view: agentsView },
  ]);
})();
