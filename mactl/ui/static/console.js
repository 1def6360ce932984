// mactl console: colours the map's nodes by status and keeps them current. Plain JavaScript, no build step.
"use strict";

function mactlSetClass(el, prefix, name) {
  for (const c of Array.from(el.classList)) {
    if (c.startsWith(prefix)) el.classList.remove(c);
  }
  el.classList.add(prefix + name);
}

function mactlText(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

function mactlLabel(status) {
  return {pending: "planned", complete_with_errors: "complete with errors", awaiting_approval: "awaiting approval",
          rolled_back: "rolled back", left_manual: "left to you", rolling_back: "rollback interrupted"}[status] || status;
}

function mactlMap(initial) {
  const byId = new Map(initial.nodes.map(n => [n.id, n]));

  function apply(status) {
    for (const [id, node] of Object.entries(status.nodes)) {
      const g = document.getElementById(id);
      if (!g) continue;
      mactlSetClass(g, "st-", node.status);
      g.setAttribute("data-status", node.status);
      const info = byId.get(id);
      if (info) g.setAttribute("data-address", info.address || info.label.replace("\n", " "));
      const title = g.querySelector("title");
      if (title && info) {
        const counts = Object.entries(node.counts).map(([s, n]) => n + " " + mactlLabel(s)).join(", ");
        title.textContent = info.label.replace("\n", " ") + ": " + counts + (node.progress ? " · " + node.progress : "");
      }
    }
    const summary = document.getElementById("summary");
    summary.replaceChildren();
    for (const [s, n] of Object.entries(status.summary).sort()) {
      const badge = mactlText("span", n + " " + mactlLabel(s), "badge st-" + s);
      summary.appendChild(badge);
    }
    const approvals = document.getElementById("approvals");
    approvals.replaceChildren();
    if (status.pending_approvals.length) {
      approvals.appendChild(document.createTextNode("Waiting for approval: "));
      for (const a of status.pending_approvals) {
        const link = mactlText("a", a);
        link.href = "/stage/" + encodeURIComponent(a);
        approvals.appendChild(link);
        approvals.appendChild(document.createTextNode(" "));
      }
    }
    document.body.setAttribute("data-serial", String(status.serial));
  }

  async function showDetail(id) {
    const panel = document.getElementById("detail");
    const response = await fetch("/api/node/" + encodeURIComponent(id), {cache: "no-store", credentials: "same-origin"});
    if (!response.ok) return;
    const data = await response.json();
    panel.replaceChildren(mactlText("h2", data.label.replace("\n", " ")));
    if (data.count > data.stages.length) panel.appendChild(mactlText("p", "first " + data.stages.length + " of " + data.count, "muted"));
    for (const s of data.stages) {
      const box = document.createElement("div");
      box.className = "stagebox";
      const link = mactlText("a", s.address);
      link.href = "/stage/" + encodeURIComponent(s.address);
      box.appendChild(link);
      box.appendChild(document.createTextNode(" "));
      box.appendChild(mactlText("span", mactlLabel(s.status), "badge st-" + s.status));
      if (s.progress) box.appendChild(mactlText("p", s.progress, "muted"));
      if (s.approval) box.appendChild(mactlText("p", "approval: " + s.approval, "muted"));
      if (s.errors) box.appendChild(mactlText("p", s.errors, "bad"));
      if (s.ledger.length) {
        const table = document.createElement("table");
        table.className = "mini";
        const head = document.createElement("tr");
        for (const h of ["index", "live", "written", "dead-lettered", "unaccounted"]) head.appendChild(mactlText("th", h));
        table.appendChild(head);
        for (const r of s.ledger) {
          const tr = document.createElement("tr");
          tr.appendChild(mactlText("td", r.index));
          for (const k of ["live", "written", "deadLettered", "unaccounted"]) tr.appendChild(mactlText("td", String(r[k]), "n"));
          table.appendChild(tr);
        }
        box.appendChild(table);
      }
      if (s.items.length) {
        const table = document.createElement("table");
        table.className = "mini items";
        const head = document.createElement("tr");
        for (const h of ["kind", "name", "outcome"]) head.appendChild(mactlText("th", h));
        table.appendChild(head);
        for (const item of s.items) {
          const tr = document.createElement("tr");
          for (const k of ["kind", "name", "outcome"]) tr.appendChild(mactlText("td", item[k], k === "outcome" && item.outcome === "failed" ? "bad" : ""));
          table.appendChild(tr);
        }
        box.appendChild(table);
      }
      panel.appendChild(box);
    }
  }

  for (const n of initial.nodes) {
    const g = document.getElementById(n.id);
    if (g) g.addEventListener("click", () => showDetail(n.id));
  }
  apply(initial.status);

  async function poll() {
    try {
      const response = await fetch("/api/status", {cache: "no-store", credentials: "same-origin"});
      if (response.ok) apply(await response.json());
      document.body.classList.toggle("stale", !response.ok);
    } catch (e) {
      document.body.classList.add("stale");
    }
    setTimeout(poll, initial.pollMs);
  }
  setTimeout(poll, initial.pollMs);
}

function mactlPlan(initial) {
  for (const [id, action] of Object.entries(initial.actions)) {
    const g = document.getElementById(id);
    if (!g) continue;
    mactlSetClass(g, "st-", action);
    g.setAttribute("data-action", action);
    if (initial.addresses[id]) g.setAttribute("data-address", initial.addresses[id]);
  }
}
