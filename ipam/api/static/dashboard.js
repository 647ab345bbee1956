// ovirt-ipam's page: polls the engine's /dashboard/api/... JSON and updates the
// tables in place (rows keyed by id, rebuilt only when their data changed), so a
// search box keeps its focus and nothing reloads. Every text from the store goes in
// with textContent, never as HTML. The token, when the engine wants one, is kept in
// sessionStorage (this tab only) and sent as X-Auth-Token; never put in a URL.
"use strict";

(() => {
  const BASE = document.body.dataset.base;
  const TOKEN_KEY = "ovirt-ipam.token";
  const POLL_MS = 2000;
  const SEARCH_DELAY_MS = 250;
  const PAGE = 50;

  const sections = {
    networks: { limit: PAGE, offset: 0, q: "" },
    hosts: { limit: PAGE, offset: 0, q: "" },
    ports: { limit: PAGE, offset: 0, q: "" },
  };

  class AuthNeeded extends Error {}

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(...children) {
    const td = document.createElement("td");
    for (const c of children) {
      if (c === null || c === undefined) continue;
      td.append(typeof c === "object" ? c : String(c));
    }
    return td;
  }

  function number(n) {
    if (typeof n !== "number") return String(n);
    return n >= 1e12 ? n.toExponential(2) : n.toLocaleString("en-US");
  }

  function ago(now, t) {
    if (t === null || t === undefined) return "never";
    const s = Math.max(0, Math.round(now - t));
    if (s < 120) return `${s} s ago`;
    if (s < 7200) return `${Math.round(s / 60)} min ago`;
    return new Date(t * 1000).toLocaleString();
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function getJSON(path, params) {
    const url = new URL(`${BASE}/api/${path}`, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, v);
    }
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers["X-Auth-Token"] = t;
    const resp = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) throw new AuthNeeded();
    let body = null;
    try {
      body = await resp.json();
    } catch (_e) {
      body = null;
    }
    if (!resp.ok) {
      const err = body && body.NeutronError ? body.NeutronError.message : resp.statusText;
      throw new Error(`${path}: ${resp.status} ${err}`);
    }
    return body;
  }

  // Make tbody's rows those of items, in order, keeping the rows whose data is the same.
  function syncRows(tbody, items, key, build) {
    const old = new Map();
    for (const tr of tbody.children) old.set(tr.dataset.key, tr);
    let prev = null;
    for (const item of items) {
      const k = key(item);
      const sig = JSON.stringify(item);
      let tr = old.get(k);
      old.delete(k);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.key = k;
      }
      if (tr.dataset.sig !== sig) {
        tr.replaceChildren(...build(item));
        tr.dataset.sig = sig;
      }
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  function pager(name, body) {
    const span = document.querySelector(`.pager[data-section="${name}"]`);
    const st = sections[name];
    const first = body.total ? body.offset + 1 : 0;
    const last = body.offset + (body[name] || []).length;
    let text = span.querySelector(".range");
    if (!text) {
      const prev = el("button", "prev", "‹ Prev");
      const next = el("button", "next", "Next ›");
      prev.type = next.type = "button";
      prev.addEventListener("click", () => {
        st.offset = Math.max(0, st.offset - st.limit);
        refreshNow();
      });
      next.addEventListener("click", () => {
        st.offset += st.limit;
        refreshNow();
      });
      text = el("span", "range");
      span.replaceChildren(prev, text, next);
    }
    text.textContent = ` ${number(first)}–${number(last)} of ${number(body.total)} `;
    span.querySelector(".prev").disabled = body.offset === 0;
    span.querySelector(".next").disabled = last >= body.total;
    $(`${name}-total`).textContent = `(${number(body.total)})`;
    $(`${name}-empty`).hidden = (body[name] || []).length !== 0;
  }

  function chip(text, cls, title) {
    const c = el("span", `chip ${cls}`, text);
    if (title) c.title = title;
    return c;
  }

  function usage(sub) {
    const box = el("div", "usage");
    box.dataset.cidr = sub.cidr;
    box.dataset.used = sub.used;
    box.dataset.total = sub.total;
    const ratio = sub.total > 0 ? sub.used / sub.total : 0;
    const bar = el("div", "bar");
    const fill = el("div", ratio >= 0.9 ? "fill full" : ratio >= 0.7 ? "fill high" : "fill");
    fill.style.width = `${Math.min(100, ratio * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
    bar.append(fill);
    bar.title = `${sub.used} used of ${sub.total}, ${sub.free} free`;
    box.append(
      el("span", "cidr", sub.cidr),
      bar,
      el("span", "figures", `${number(sub.used)} / ${number(sub.total)} used, ${number(sub.free)} free`),
    );
    return box;
  }

  function networkRow(net) {
    const serving = el("div", "chips");
    for (const s of net.serving) {
      const state = s.alive ? "up" : "down";
      const title = `${s.host}: ${s.alive ? "alive" : "down"}${s.dnsmasq ? `, dnsmasq ${s.dnsmasq}` : ""}`;
      const c = chip(s.host, state, title);
      c.dataset.host = s.host;
      c.dataset.alive = String(s.alive);
      serving.append(c);
    }
    if (!net.serving.length) serving.append(el("span", "muted", "none"));
    const wanted = net.ha_count;
    const cls = net.serving_alive >= wanted ? "ok" : net.serving_alive > 0 ? "warn" : "bad";
    const subnets = el("div", "subnets");
    for (const s of net.subnets) subnets.append(usage(s));
    if (net.subnet_count > net.subnets.length) {
      subnets.append(el("span", "muted", `+${net.subnet_count - net.subnets.length} more subnets`));
    }
    if (!net.subnet_count) subnets.append(el("span", "muted", "no subnet"));
    const name = el("div", "name", net.name || "(no name)");
    return [
      cell(name, el("div", "id", net.id)),
      cell(net.vdsm_name ? el("code", null, net.vdsm_name) : el("span", "muted", "no bridge")),
      cell(el("span", `badge ${cls} ha`, `${net.serving_alive} / ${wanted}`)),
      cell(serving),
      cell(number(net.ports)),
      cell(subnets),
    ];
  }

  function hostRow(now, h) {
    const state = h.alive ? "up" : "down";
    const part = (alive, t, none) =>
      alive === null ? el("span", "muted", none) : el("span", `badge ${alive ? "up" : "down"}`,
        `${alive ? "alive" : "down"} (${ago(now, t)})`);
    const served = el("div", "chips");
    for (const n of h.serving) {
      served.append(chip(n.name || n.id, "net", n.dnsmasq ? `dnsmasq ${n.dnsmasq}` : n.id));
    }
    if (h.serving_count > h.serving.length) {
      served.append(el("span", "muted", `+${h.serving_count - h.serving.length} more`));
    }
    if (!h.serving_count) served.append(el("span", "muted", "none"));
    const badge = el("span", `badge ${state} state`, h.alive ? "alive" : "down");
    return [
      cell(el("span", "name", h.name)),
      cell(badge),
      cell(ago(now, h.last_seen)),
      cell(part(h.service_alive, h.service_last_seen, "no host service")),
      cell(part(h.agent_alive, h.agent_last_seen, "no agent")),
      cell(served),
    ];
  }

  function when(iso) {
    if (!iso) return el("span", "muted", "—");
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function portRow(p) {
    const lease = p.dhcp_lease;
    const leaseCell = lease
      ? [el("span", `badge lease-${lease.state}`, lease.state), " ", lease.ip_address || ""]
      : [el("span", "muted", "—")];
    if (lease && lease.client_hostname) {
      // What the client calls itself: shown as text, never as the port's name.
      leaseCell.push(el("div", "client-name", `client says: ${lease.client_hostname}`));
    }
    const reason = p.dhcp_status_reason
      ? el("span", "reason", p.dhcp_status_reason)
      : el("span", "muted", "—");
    return [
      cell(el("div", "name", p.name || "(no name)"), el("div", "id", p.id)),
      cell(el("code", "mac", p.mac_address)),
      cell(...(p.ip_addresses || []).map((ip) => el("div", "ip", ip))),
      cell(p.network_name || p.network_id),
      cell(el("span", `badge status-${p.status}`, p.status)),
      cell(...leaseCell),
      cell(lease && lease.host ? lease.host : el("span", "muted", "—")),
      cell(lease ? when(lease.expires_at) : el("span", "muted", "—")),
      cell(reason),
    ];
  }

  function renderSummary(s) {
    const by = Object.entries(s.ports.by_status)
      .map(([k, v]) => `${k} ${number(v)}`)
      .join(", ");
    $("summary").textContent =
      `${number(s.networks)} networks · ${number(s.subnets)} subnets · ` +
      `${number(s.ports.total)} ports${by ? ` (${by})` : ""} · ` +
      `hosts alive ${s.hosts.alive} of ${s.hosts.total}`;
  }

  function setLive(text, cls) {
    const live = $("live");
    live.textContent = text;
    live.className = `live ${cls}`;
  }

  function setAuthNeeded(needed) {
    $("auth-needed").hidden = !needed;
    $("token-form").classList.toggle("needed", needed);
    document.body.dataset.auth = needed ? "needed" : "ok";
  }

  // One refresh at a time; a request for another while one runs makes one more after it.
  let running = false;
  let again = false;
  let timer = null;

  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    const asked = JSON.stringify(sections);
    try {
      const [summary, nets, hosts, ports] = await Promise.all([
        getJSON("summary"),
        getJSON("networks", sections.networks),
        getJSON("hosts", sections.hosts),
        getJSON("ports", sections.ports),
      ]);
      setAuthNeeded(false);
      renderSummary(summary);
      if (asked === JSON.stringify(sections)) {  // else: stale, the next refresh is coming
        syncRows($("networks").tBodies[0], nets.networks, (n) => n.id, networkRow);
        pager("networks", nets);
        syncRows($("hosts").tBodies[0], hosts.hosts, (h) => h.name, (h) => hostRow(hosts.now, h));
        pager("hosts", hosts);
        syncRows($("ports").tBodies[0], ports.ports, (p) => p.id, portRow);
        pager("ports", ports);
      }
      setLive(`live · updated ${new Date().toLocaleTimeString()}`, "ok");
      document.body.dataset.updated = String(Date.now());
    } catch (e) {
      if (e instanceof AuthNeeded) {
        setAuthNeeded(true);
        setLive("token needed", "bad");
      } else {
        setLive(`not updated: ${e.message}`, "bad");
      }
    } finally {
      running = false;
      if (again) {
        again = false;
        refresh();
      } else if (!document.hidden) {
        timer = setTimeout(refresh, POLL_MS);
      }
    }
  }

  function refreshNow() {
    refresh();
  }

  function searchBox(name) {
    const input = $(`${name}-search`);
    let wait = null;
    input.addEventListener("input", () => {
      clearTimeout(wait);
      wait = setTimeout(() => {
        sections[name].q = input.value.trim();
        sections[name].offset = 0;
        refreshNow();
      }, SEARCH_DELAY_MS);
    });
  }

  function tokenForm() {
    const form = $("token-form");
    const input = $("token");
    const showSet = () => {
      input.placeholder = token() ? "token set for this tab" : "";
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      input.value = "";
      showSet();
      refreshNow();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showSet();
      refreshNow();
    });
    showSet();
  }

  for (const name of Object.keys(sections)) searchBox(name);
  tokenForm();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshNow();
  });
  refresh();
})();
