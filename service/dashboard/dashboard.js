/* dashboard.js - briefd's dashboard: reads /v1/stats, fills the tiles and tables (cost, latency, quality), draws the Chart.js charts. */
(function () {
  'use strict';

  var WINDOWS = [900, 3600, 21600, 86400, 604800];
  var DEFAULT_WINDOW = 3600;
  var REFRESH_MS = 10000;
  var KEY_STORE = 'briefd.apiKey';
  var STAGES = ['queue', 'draft_wait', 'draft', 'draft_ttft', 'refine_wait', 'refine',
                'refine_ttft', 'total'];
  var STAGE_LABELS = {
    queue: 'Queue', draft_wait: 'Draft slot wait', draft: 'Draft', draft_ttft: 'Draft TTFT',
    refine_wait: 'Refine slot wait', refine: 'Refine', refine_ttft: 'Refine TTFT', total: 'Total'
  };
  /* the slot waits exist only with models.X.max_concurrency: in the table when they have
     samples, never in the chart */
  var CHART_STAGES = STAGES.filter(function (s) { return !/_wait$/.test(s); });
  var COLORS = {
    blue: '#2563eb', blueSoft: 'rgba(37, 99, 235, 0.12)', gray: '#98a2b3',
    graySoft: 'rgba(152, 162, 179, 0.35)', orange: '#e8590c',
    p50: '#93c5fd', p95: '#3b82f6', p99: '#1e3a8a'
  };

  var state = {
    window: DEFAULT_WINDOW,
    seq: 0,            /* generation of the latest refresh; older answers are dropped */
    timer: null,
    lastOk: null,      /* Date of the last successful refresh */
    asking: false,     /* the API key dialog is open */
    charts: {}
  };

  /* ---- formatting ---- */

  function isNum(v) {
    return typeof v === 'number' && isFinite(v);
  }

  function fmtInt(v) {
    return isNum(v) ? Math.round(v).toLocaleString('en-US') : '—';
  }

  /* USD: two decimals from $1 up; below that three significant digits (at least two
   * decimals, trailing zeros trimmed), so tiny per-job costs read like $0.000153. */
  function fmtUSD(v) {
    if (!isNum(v)) return '—';
    var a = Math.abs(v);
    var sign = v < 0 ? '-' : '';
    if (a === 0) return '$0.00';
    if (a >= 1) {
      return sign + '$' + a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    if (a < 1e-8) return sign + '<$0.00000001';
    var decimals = Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(a))));
    var s = a.toFixed(decimals);
    while (/\.\d{3,}$/.test(s) && s.charAt(s.length - 1) === '0') s = s.slice(0, -1);
    return sign + '$' + s;
  }

  /* A fraction as a percentage with one decimal: 0.259 -> "25.9%". */
  function fmtPct(v) {
    return isNum(v) ? (v * 100).toFixed(1) + '%' : '—';
  }

  function fmtMs(v) {
    if (!isNum(v)) return '—';
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return Math.round(v).toLocaleString('en-US');
  }

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function fmtClock(d) {
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function fmtBucket(t, windowS) {
    var d = new Date(t * 1000);
    var hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (windowS <= 86400) return hm;
    return d.toLocaleDateString('en-US', { month: 'short', day: 'numeric' }) + ' ' + hm;
  }

  function fmtStep(s) {
    if (s >= 3600) return Number((s / 3600).toFixed(1)) + ' h';
    if (s % 60 === 0) return s / 60 + ' min';
    return s + ' s';
  }

  /* step= for a window: about 60 points, a multiple of 60 s. */
  function stepFor(windowS) {
    return Math.max(60, Math.round(windowS / 60 / 60) * 60);
  }

  function num(v) {
    return isNum(v) ? v : null;
  }

  function get(obj, path) {
    var cur = obj;
    for (var i = 0; i < path.length; i++) {
      if (cur === null || typeof cur !== 'object') return null;
      cur = cur[path[i]];
    }
    return cur === undefined ? null : cur;
  }

  /* ---- DOM helpers (textContent only: source and tenant names come from clients) ---- */

  function $(id) {
    return document.getElementById(id);
  }

  function setFigure(id, text, value) {
    var el = $(id);
    el.textContent = text;
    if (isNum(value)) el.setAttribute('data-value', String(value));
    else el.removeAttribute('data-value');
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function cell(text, cls, field, value) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    if (field) td.setAttribute('data-field', field);
    if (isNum(value)) td.setAttribute('data-value', String(value));
    return td;
  }

  function emptyRow(tbody, cols, text) {
    var tr = document.createElement('tr');
    var td = document.createElement('td');
    td.colSpan = cols;
    td.className = 'empty';
    td.textContent = text;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  function tbodyOf(id) {
    var tbody = $(id).querySelector('tbody');
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    return tbody;
  }

  /* ---- the API ---- */

  function ApiError(kind, message, status) {
    this.kind = kind;          /* unreachable | auth | http | bad */
    this.message = message;
    this.status = status || 0;
  }

  function apiGet(path) {
    var headers = { Accept: 'application/json' };
    var key = null;
    try { key = sessionStorage.getItem(KEY_STORE); } catch (e) { key = null; }
    if (key) headers.Authorization = 'Bearer ' + key;
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'same-origin' })
      .catch(function (e) {
        throw new ApiError('unreachable', 'the briefd API is unreachable (' + (e && e.message ? e.message : e) + ')');
      })
      .then(function (resp) {
        return resp.text().then(function (body) {
          var data = null;
          try { data = body ? JSON.parse(body) : null; } catch (e) { data = null; }
          if (resp.status === 401 || resp.status === 403) {
            var err = new ApiError('auth', get(data, ['error', 'message']) || 'an API key is required', resp.status);
            err.sentKey = !!key;
            throw err;
          }
          if (!resp.ok) {
            var msg = get(data, ['error', 'message']) || resp.statusText || 'error';
            throw new ApiError('http', 'GET ' + path.split('?')[0] + ' answered ' + resp.status + ': ' + msg, resp.status);
          }
          if (!data || typeof data !== 'object') {
            throw new ApiError('bad', 'GET ' + path.split('?')[0] + ' did not answer JSON');
          }
          return data;
        });
      });
  }

  function askForKey(message) {
    var dlg = $('key-dialog');
    if (state.asking) return;
    state.asking = true;
    dlg.querySelector('p').textContent = message + '. The key is kept in this tab only (sessionStorage).';
    $('key-input').value = '';
    if (typeof dlg.showModal === 'function') dlg.showModal();
    else dlg.setAttribute('open', '');
    $('key-input').focus();
  }

  $('key-form').addEventListener('submit', function (ev) {
    var key = $('key-input').value.trim();
    if (!key) {
      ev.preventDefault();
      return;
    }
    try { sessionStorage.setItem(KEY_STORE, key); } catch (e) { /* private mode: ask again next load */ }
    state.asking = false;
    refresh();
  });

  $('key-dialog').addEventListener('cancel', function () {
    state.asking = false;
  });

  /* ---- rendering ---- */

  function renderTiles(s) {
    var jobs = num(s.jobs);
    var cost = s.cost_usd || {};
    var cf = s.counterfactual_usd || {};
    setFigure('jobs', fmtInt(jobs), jobs);
    setText('jobs-sub', isNum(s.succeeded) ? fmtInt(s.succeeded) + ' succeeded' : '\u00a0');

    setFigure('refine-rate', fmtPct(s.refine_rate), num(s.refine_rate));
    setText('refine-sub', isNum(s.refined) ? fmtInt(s.refined) + ' refined of ' + fmtInt(jobs) : '\u00a0');

    setFigure('cost-per-job', fmtUSD(cost.per_job), num(cost.per_job));
    var allPer = isNum(cf.all_refine) && jobs ? cf.all_refine / jobs : null;
    setText('cost-per-job-sub', allPer !== null ? 'refine-all ' + fmtUSD(allPer) + '/job' : '\u00a0');

    setFigure('cost-total', fmtUSD(cost.total), num(cost.total));
    setText('cost-total-sub', 'draft ' + fmtUSD(cost.draft) + ' · refine ' + fmtUSD(cost.refine));

    setFigure('savings', fmtPct(cf.savings_vs_all_refine), num(cf.savings_vs_all_refine));
    var saved = isNum(cf.all_refine) && isNum(cost.total) ? cf.all_refine - cost.total : null;
    setText('savings-sub', saved !== null ? fmtUSD(saved) + ' vs refining all' : '\u00a0');
    $('savings').title = isNum(cf.all_refine) ? 'refining every job would have cost about ' + fmtUSD(cf.all_refine) : '';

    setFigure('degraded', fmtInt(s.degraded), num(s.degraded));
    $('degraded-tile').className = 'tile' + (s.degraded > 0 ? ' warn' : '');
    var cache = s.cache || {};
    var lookups = (num(cache.hits) || 0) + (num(cache.misses) || 0);
    setFigure('cache-hit-rate', fmtPct(cache.hit_rate), num(cache.hit_rate));
    setText('cache-sub', lookups ? fmtInt(cache.hits) + ' of ' + fmtInt(lookups) + ' lookups' : 'no lookups (cache off?)');

    setFigure('failed', fmtInt(s.failed), num(s.failed));
    setText('failed-sub', jobs ? fmtPct(s.failed / jobs) + ' of jobs' : '\u00a0');
    $('failed-tile').className = 'tile' + (s.failed > 0 ? ' bad' : '');
  }

  function renderLatencyTable(lat) {
    var tbody = tbodyOf('latency-table');
    STAGES.forEach(function (stage) {
      var e = lat[stage] || {};
      if (/_wait$/.test(stage) && !lat[stage])
        return;
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'latency-row');
      tr.setAttribute('data-key', stage);
      tr.appendChild(cell(STAGE_LABELS[stage]));
      ['p50', 'p95', 'p99'].forEach(function (p) {
        tr.appendChild(cell(fmtMs(e[p]), 'n num', p, num(e[p])));
      });
      tr.appendChild(cell(fmtInt(e.count), 'n num', 'count', num(e.count)));
      tbody.appendChild(tr);
    });
  }

  /* A tenant's limits (docs/CONFIG.md#tenants) in a few words; a dash when it has none. */
  function fmtLimits(l) {
    var parts = [];
    if (!l) return '—';
    if (isNum(l.jobs_per_minute)) parts.push(fmtInt(l.jobs_per_minute) + '/min');
    if (isNum(l.daily_budget_usd)) parts.push(fmtUSD(l.daily_budget_usd) + '/day');
    if (isNum(l.max_refine_rate)) parts.push('refine ≤ ' + fmtPct(l.max_refine_rate));
    return parts.length ? parts.join(' · ') : '—';
  }

  /* withLimits: the tenants' table, with each tenant's limits and what is left of its
   * budget today. */
  function renderGroups(id, rowId, groups, withLimits) {
    var tbody = tbodyOf(id);
    var names = Object.keys(groups || {});
    names.sort(function (a, b) {
      return ((groups[b] && groups[b].jobs) || 0) - ((groups[a] && groups[a].jobs) || 0) || (a < b ? -1 : 1);
    });
    if (!names.length) {
      emptyRow(tbody, withLimits ? 9 : 7, 'no jobs in this window');
      return;
    }
    names.forEach(function (name) {
      var g = groups[name] || {};
      var cost = g.cost_usd || {};
      var cf = g.counterfactual_usd || {};
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', rowId);
      tr.setAttribute('data-key', name);
      tr.appendChild(cell(name, null, 'name'));
      tr.appendChild(cell(fmtInt(g.jobs), 'n num', 'jobs', num(g.jobs)));
      tr.appendChild(cell(fmtPct(g.refine_rate), 'n num', 'refine_rate', num(g.refine_rate)));
      tr.appendChild(cell(fmtUSD(cost.per_job), 'n num', 'per_job', num(cost.per_job)));
      tr.appendChild(cell(fmtUSD(cost.total), 'n num', 'cost_total', num(cost.total)));
      tr.appendChild(cell(fmtPct(cf.savings_vs_all_refine), 'n num', 'savings', num(cf.savings_vs_all_refine)));
      tr.appendChild(cell(fmtInt(g.failed), 'n num', 'failed', num(g.failed)));
      if (withLimits) {
        tr.appendChild(cell(fmtLimits(g.limits), null, 'limits'));
        tr.appendChild(cell(fmtUSD(g.remaining_budget_usd), 'n num', 'budget_left', num(g.remaining_budget_usd)));
      }
      tbody.appendChild(tr);
    });
  }

  /* by_policy: {"length": 200, ...} refine votes; an object per policy is read as its refine count. */
  function policyVotes(v) {
    if (isNum(v)) return v;
    if (v && typeof v === 'object' && isNum(v.refine)) return v.refine;
    return null;
  }

  function renderPolicies(byPolicy, jobs) {
    var tbody = tbodyOf('by-policy');
    var names = Object.keys(byPolicy || {});
    if (!names.length) {
      emptyRow(tbody, 3, 'no routing decisions in this window');
      return;
    }
    var max = 0;
    names.forEach(function (n) { max = Math.max(max, policyVotes(byPolicy[n]) || 0); });
    names.sort(function (a, b) { return (policyVotes(byPolicy[b]) || 0) - (policyVotes(byPolicy[a]) || 0); });
    names.forEach(function (name) {
      var votes = policyVotes(byPolicy[name]);
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'policy-row');
      tr.setAttribute('data-key', name);
      tr.appendChild(cell(name, null, 'name'));
      tr.appendChild(cell(fmtInt(votes), 'n num', 'votes', votes));
      var td = cell('', 'num', 'share');
      var bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = (max > 0 && votes ? Math.max(2, Math.round(120 * votes / max)) : 0) + 'px';
      td.appendChild(bar);
      td.appendChild(document.createTextNode(jobs ? fmtPct((votes || 0) / jobs) : '—'));
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
  }

  function renderTokens(tokens) {
    var tbody = tbodyOf('tokens');
    var names = Object.keys(tokens || {}).sort();
    if (!names.length) {
      emptyRow(tbody, 4, 'no tokens in this window');
      return;
    }
    names.forEach(function (model) {
      var t = tokens[model] || {};
      var p = num(t.prompt);
      var c = num(t.completion);
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'tokens-row');
      tr.setAttribute('data-key', model);
      tr.appendChild(cell(model, null, 'model'));
      tr.appendChild(cell(fmtInt(p), 'n num', 'prompt', p));
      tr.appendChild(cell(fmtInt(c), 'n num', 'completion', c));
      var total = (p || 0) + (c || 0);
      tr.appendChild(cell(fmtInt(total), 'n num', 'total', total));
      tbody.appendChild(tr);
    });
  }

  /* ---- quality (shadow judging and feedback) ---- */

  /* An overall score (1-5) with two decimals; a gap with a sign. */
  function fmtScore(v) {
    return isNum(v) ? v.toFixed(2) : '—';
  }

  function fmtGap(v) {
    return isNum(v) ? (v > 0 ? '+' : '') + v.toFixed(2) : '—';
  }

  function renderQuality(q, evalUsd) {
    q = q || {};
    var overall = q.overall || {};
    var gap = q.gap_when_kept || {};
    var fb = q.feedback || {};
    setFigure('q-judged', fmtInt(q.judged), num(q.judged));
    setText('q-judged-sub', isNum(q.shadow) ? fmtInt(q.shadow) + ' evaluated in the shadow' : '\u00a0');
    setFigure('q-served', fmtScore(overall.served), num(overall.served));
    setText('q-served-sub', 'draft ' + fmtScore(overall.draft) + ' · refine ' + fmtScore(overall.refine));
    setFigure('q-gap', fmtGap(gap.mean), num(gap.mean));
    setText('q-gap-sub', isNum(gap.count) && gap.count > 0 ? 'p90 ' + fmtGap(gap.p90) + ' over ' + fmtInt(gap.count) + ' kept' : 'no kept job judged');
    setFigure('q-missed', fmtInt(q.missed_refinements), num(q.missed_refinements));
    $('q-missed-tile').className = 'tile' + (q.missed_refinements > 0 ? ' warn' : '');
    setFigure('q-needless', fmtInt(q.needless_refinements), num(q.needless_refinements));
    $('q-needless-tile').className = 'tile' + (q.needless_refinements > 0 ? ' warn' : '');
    setFigure('q-feedback', fmtScore(fb.mean_score), num(fb.mean_score));
    setText('q-feedback-sub', fmtInt(fb.count) + ' given');
    setFigure('q-eval-usd', fmtUSD(evalUsd), num(evalUsd));
    renderQualityModels(q.by_model);
    renderFeedback(fb);
  }

  function renderQualityModels(byModel) {
    var tbody = tbodyOf('quality-models');
    var names = Object.keys(byModel || {}).sort();
    if (!names.length) {
      emptyRow(tbody, 4, 'no judged briefs in this window');
      return;
    }
    names.forEach(function (model) {
      var m = byModel[model] || {};
      var tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'quality-model-row');
      tr.setAttribute('data-key', model);
      tr.appendChild(cell(model, null, 'model'));
      tr.appendChild(cell(fmtInt(m.count), 'n num', 'count', num(m.count)));
      tr.appendChild(cell(fmtScore(m.mean), 'n num', 'mean', num(m.mean)));
      var td = cell('', 'num', 'bar');
      var bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = (isNum(m.mean) ? Math.max(2, Math.round(120 * (m.mean - 1) / 4)) : 0) + 'px';
      td.appendChild(bar);
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
  }

  function feedbackRow(tbody, rowId, key, labels, c) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-testid', rowId);
    tr.setAttribute('data-key', key);
    labels.forEach(function (l, i) { tr.appendChild(cell(l, null, i ? 'verdict' : 'name')); });
    tr.appendChild(cell(fmtInt(c.count), 'n num', 'count', num(c.count)));
    tr.appendChild(cell(fmtScore(c.mean_score), 'n num', 'mean_score', num(c.mean_score)));
    tbody.appendChild(tr);
  }

  function renderFeedback(fb) {
    var tbody = tbodyOf('feedback-decisions');
    var dec = fb.by_decision || {};
    ['keep', 'refine'].forEach(function (d) {
      feedbackRow(tbody, 'feedback-decision-row', d, [d], dec[d] || {});
    });
    tbody = tbodyOf('feedback-policies');
    var pols = fb.by_policy || {};
    var rows = 0;
    Object.keys(pols).sort().forEach(function (p) {
      Object.keys(pols[p] || {}).sort().forEach(function (v) {
        feedbackRow(tbody, 'feedback-policy-row', p + ':' + v, [p, v], pols[p][v] || {});
        rows++;
      });
    });
    if (!rows) emptyRow(tbody, 4, 'no feedback in this window');
  }

  /* ---- charts ---- */

  function baseOptions() {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { position: 'bottom', labels: { usePointStyle: true, boxWidth: 8, boxHeight: 8 } } },
      scales: {
        x: { grid: { display: false }, ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkip: true } },
        y: { beginAtZero: true, grid: { color: '#eef0f3' }, ticks: { maxTicksLimit: 6 } }
      }
    };
  }

  function makeCharts() {
    if (typeof window.Chart !== 'function') return false;
    var Chart = window.Chart;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 12;
    Chart.defaults.color = '#667085';

    var cost = baseOptions();
    cost.scales.y.ticks = { maxTicksLimit: 6, callback: function (v) { return fmtUSD(v); } };
    cost.plugins.tooltip = { callbacks: { label: function (c) { return c.dataset.label + ': ' + fmtUSD(c.parsed.y); } } };
    state.charts.cost = new Chart($('chart-cost'), {
      type: 'line',
      data: { labels: [], datasets: [
        { label: 'Cost per job', data: [], borderColor: COLORS.blue, backgroundColor: COLORS.blueSoft,
          pointBackgroundColor: COLORS.blue, fill: true, tension: 0.25, pointRadius: 3, spanGaps: true },
        { label: 'Refine-all estimate per job', data: [], borderColor: COLORS.gray, borderDash: [5, 4],
          pointRadius: 2, pointBackgroundColor: COLORS.gray, tension: 0.25, spanGaps: true, fill: false }
      ] },
      options: cost
    });

    var refine = baseOptions();
    refine.scales.y = { beginAtZero: true, suggestedMax: 100, grid: { color: '#eef0f3' },
      ticks: { callback: function (v) { return v + '%'; } } };
    refine.scales.jobs = { position: 'right', beginAtZero: true, grid: { display: false },
      ticks: { precision: 0 }, title: { display: true, text: 'jobs' } };
    refine.plugins.tooltip = { callbacks: { label: function (c) {
      return c.dataset.yAxisID === 'jobs' ? 'Jobs: ' + fmtInt(c.parsed.y) : 'Refine rate: ' + c.parsed.y.toFixed(1) + '%';
    } } };
    state.charts.refine = new Chart($('chart-refine'), {
      type: 'bar',
      data: { labels: [], datasets: [
        { type: 'line', label: 'Refine rate', data: [], borderColor: COLORS.orange, backgroundColor: COLORS.orange,
          yAxisID: 'y', tension: 0.25, pointRadius: 3, spanGaps: true, order: 1 },
        { type: 'bar', label: 'Jobs', data: [], backgroundColor: COLORS.graySoft, yAxisID: 'jobs', order: 2 }
      ] },
      options: refine
    });

    var lat = baseOptions();
    lat.scales.y = { type: 'logarithmic', grid: { color: '#eef0f3' },
      ticks: { callback: function (v) {
        var l = Math.log10(v);
        if (Math.abs(l - Math.round(l)) > 1e-9) return '';
        return v >= 1 ? Math.round(v).toLocaleString('en-US') : String(v);
      } } };
    lat.plugins.tooltip = { callbacks: { label: function (c) { return c.dataset.label + ': ' + fmtMs(c.parsed.y) + ' ms'; } } };
    state.charts.latency = new Chart($('chart-latency'), {
      type: 'bar',
      data: { labels: CHART_STAGES.map(function (s) { return STAGE_LABELS[s]; }), datasets: [
        { label: 'p50', data: [], backgroundColor: COLORS.p50 },
        { label: 'p95', data: [], backgroundColor: COLORS.p95 },
        { label: 'p99', data: [], backgroundColor: COLORS.p99 }
      ] },
      options: lat
    });

    var q = baseOptions();
    q.scales.y.ticks = { precision: 0 };
    q.scales.y.title = { display: true, text: 'jobs' };
    q.scales.gap = { position: 'right', suggestedMin: -1, suggestedMax: 1, grid: { display: false },
      title: { display: true, text: 'gap when kept' } };
    q.plugins.tooltip = { callbacks: { label: function (c) {
      return c.dataset.yAxisID === 'gap' ? 'Gap when kept: ' + fmtGap(c.parsed.y) : c.dataset.label + ': ' + fmtInt(c.parsed.y);
    } } };
    state.charts.quality = new Chart($('chart-quality'), {
      type: 'bar',
      data: { labels: [], datasets: [
        { type: 'bar', label: 'Missed refinements', data: [], backgroundColor: COLORS.orange, yAxisID: 'y', order: 2 },
        { type: 'bar', label: 'Needless refinements', data: [], backgroundColor: COLORS.gray, yAxisID: 'y', order: 3 },
        { type: 'line', label: 'Gap when kept', data: [], borderColor: COLORS.blue, backgroundColor: COLORS.blue,
          yAxisID: 'gap', tension: 0.25, pointRadius: 3, spanGaps: true, order: 1 }
      ] },
      options: q
    });
    return true;
  }

  function positive(v) {
    return isNum(v) && v > 0 ? v : null;
  }

  /* The series over the whole window, one entry per step: /v1/stats may leave out empty
   * buckets, and a chart of only the busy minutes would hide the gaps. Bucket starts keep
   * the phase of the server's buckets (epoch-aligned when there are none). */
  function fullSeries(series, windowS, step) {
    var byT = {};
    var phase = 0;
    series.forEach(function (b) {
      if (isNum(b.t)) byT[b.t] = b;
    });
    if (series.length && isNum(series[0].t)) phase = ((series[0].t % step) + step) % step;
    var now = Math.floor(Date.now() / 1000);
    var last = Math.floor((now - phase) / step) * step + phase;
    var n = Math.max(1, Math.ceil(windowS / step));
    var ts = [];
    for (var i = n - 1; i >= 0; i--) ts.push(last - i * step);
    Object.keys(byT).forEach(function (k) {
      var t = Number(k);
      if (ts.indexOf(t) < 0) ts.push(t);   /* clock skew: keep every bucket the server sent */
    });
    ts.sort(function (a, b) { return a - b; });
    return ts.map(function (t) { return byT[t] || { t: t, jobs: 0 }; });
  }

  function renderCharts(s, step) {
    if (!state.charts.cost && !makeCharts()) return;
    var series = fullSeries(Array.isArray(s.series) ? s.series : [], state.window, num(s.step_s) || step);
    var labels = series.map(function (b) { return fmtBucket(b.t, state.window); });
    var perJob = series.map(function (b) { return b.jobs > 0 ? num(b.per_job) : null; });
    var allPer = series.map(function (b) { return b.jobs > 0 && isNum(b.all_refine_usd) ? b.all_refine_usd / b.jobs : null; });
    var rate = series.map(function (b) { return b.jobs > 0 && isNum(b.refine_rate) ? b.refine_rate * 100 : null; });
    var jobs = series.map(function (b) { return num(b.jobs) || 0; });

    /* markers only where they help: a few busy buckets would otherwise be invisible */
    var busy = perJob.filter(function (v) { return v !== null; }).length;
    var c = state.charts.cost;
    c.data.labels = labels;
    c.data.datasets[0].data = perJob;
    c.data.datasets[1].data = allPer;
    c.data.datasets[1].pointRadius = busy <= 3 ? 2 : 0;
    c.data.datasets[0].pointRadius = busy > 30 ? 1.5 : 3;
    c.update('none');

    var r = state.charts.refine;
    r.data.labels = labels;
    r.data.datasets[0].data = rate;
    r.data.datasets[1].data = jobs;
    r.data.datasets[0].pointRadius = busy > 30 ? 1.5 : 3;
    r.update('none');

    var qc = state.charts.quality;
    qc.data.labels = labels;
    qc.data.datasets[0].data = series.map(function (b) { return num(b.missed_refinements) || 0; });
    qc.data.datasets[1].data = series.map(function (b) { return num(b.needless_refinements) || 0; });
    qc.data.datasets[2].data = series.map(function (b) { return num(b.gap_when_kept); });
    qc.update('none');

    var lat = s.latency_ms || {};
    var l = state.charts.latency;
    ['p50', 'p95', 'p99'].forEach(function (p, i) {
      l.data.datasets[i].data = CHART_STAGES.map(function (st) { return positive(get(lat, [st, p])); });
    });
    l.update('none');
    setText('step-label', 'per ' + fmtStep(num(s.step_s) || step));
  }

  function render(main, tenants, step) {
    renderTiles(main);
    renderCharts(main, step);
    renderLatencyTable(main.latency_ms || {});
    renderGroups('by-source', 'source-row', main.groups);
    renderGroups('by-tenant', 'tenant-row', tenants.groups, true);
    renderPolicies(main.by_policy, num(main.jobs));
    renderTokens(main.tokens);
    renderQuality(main.quality, main.evaluation_usd);
  }

  /* ---- status ---- */

  function showError(e) {
    var banner = $('api-error');
    var msg = e instanceof ApiError ? e.message : String(e && e.message ? e.message : e);
    var tail = state.lastOk ? ' Showing figures from ' + fmtClock(state.lastOk) + '.' : '';
    if (e instanceof ApiError && e.kind === 'auth') {
      tail += ' Enter an API key (press Refresh to be asked again).';
    } else {
      tail += $('auto-refresh').checked ? ' Retrying every ' + REFRESH_MS / 1000 + ' s.' : ' Press Refresh to retry.';
    }
    banner.textContent = 'Cannot load statistics: ' + msg + '.' + tail;
    banner.className = 'banner show';
    var lu = $('last-updated');
    lu.textContent = state.lastOk ? 'Last updated ' + fmtClock(state.lastOk) + ' (stale)' : 'not loaded';
  }

  function clearError() {
    var banner = $('api-error');
    banner.textContent = '';
    banner.className = 'banner';
  }

  function markUpdated() {
    state.lastOk = new Date();
    var lu = $('last-updated');
    lu.textContent = 'Updated ' + fmtClock(state.lastOk);
    lu.setAttribute('data-ts', state.lastOk.toISOString());
  }

  /* ---- refresh cycle ---- */

  function refresh() {
    var seq = ++state.seq;
    var w = state.window;
    var step = stepFor(w);
    var q = '/v1/stats?window=' + w + '&step=' + step;
    document.body.setAttribute('data-state', state.lastOk ? 'refreshing' : 'loading');
    return Promise.all([apiGet(q + '&by=source'), apiGet(q + '&by=tenant')])
      .then(function (r) {
        if (seq !== state.seq) return;
        render(r[0], r[1], step);
        markUpdated();
        clearError();
        document.body.setAttribute('data-window', String(w));
        document.body.setAttribute('data-state', 'ready');
      })
      .catch(function (e) {
        if (seq !== state.seq) return;
        if (e instanceof ApiError && e.kind === 'auth') {
          try { sessionStorage.removeItem(KEY_STORE); } catch (x) { /* nothing stored */ }
          askForKey(e.sentKey ? 'The key was not accepted (' + e.message + ')' : 'This briefd asks for an API key');
        }
        showError(e);
        document.body.setAttribute('data-state', e instanceof ApiError && e.kind === 'auth' ? 'auth' : 'error');
        if (!(e instanceof ApiError)) console.error(e);
      });
  }

  function schedule() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if ($('auto-refresh').checked) {
      state.timer = setInterval(function () {
        if (!document.hidden && !state.asking) refresh();
      }, REFRESH_MS);
    }
  }

  function setWindow(w, push) {
    state.window = w;
    var buttons = document.querySelectorAll('#window button');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute('aria-pressed', Number(buttons[i].getAttribute('data-window')) === w ? 'true' : 'false');
    }
    if (push && window.history && history.replaceState) {
      var u = new URL(location.href);
      u.searchParams.set('window', String(w));
      history.replaceState(null, '', u.pathname + u.search + u.hash);
    }
  }

  function init() {
    var qw = Number(new URLSearchParams(location.search).get('window'));
    setWindow(WINDOWS.indexOf(qw) >= 0 ? qw : DEFAULT_WINDOW, false);
    var qr = new URLSearchParams(location.search).get('refresh');
    if (qr === '0' || qr === 'off') $('auto-refresh').checked = false;

    $('window').addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-window]');
      if (!b) return;
      setWindow(Number(b.getAttribute('data-window')), true);
      refresh();
      schedule();
    });
    $('auto-refresh').addEventListener('change', function () {
      schedule();
      if ($('auto-refresh').checked) refresh();
    });
    $('refresh').addEventListener('click', function () {
      refresh();
      schedule();
    });
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden && $('auto-refresh').checked) refresh();
    });
    refresh();
    schedule();
  }

  init();
}());
