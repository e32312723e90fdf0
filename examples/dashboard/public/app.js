// The dashboard: log in (a sealed session cookie), then metrics as Server-Sent Events.
"use strict";

const $ = (id) => document.getElementById(id);
const history = { requests: [], latency: [], load: [] };
const colors = { requests: "#7aa2ff", latency: "#ffb86b", load: "#5ad1a4" };
let source = null;
let ticks = 0;

function show(user) {
  $("login").hidden = Boolean(user);
  $("dashboard").hidden = !user;
  $("who").hidden = !user;
  $("user").textContent = user || "";
  if (user) connect(); else disconnect();
}

function connect() {
  if (source) return;
  source = new EventSource("/api/metrics");
  source.onopen = () => { $("status-dot").className = "dot live"; };
  source.onerror = () => { $("status-dot").className = "dot down"; };
  source.addEventListener("metrics", (event) => update(JSON.parse(event.data)));
}

function disconnect() {
  if (source) { source.close(); source = null; }
  $("status-dot").className = "dot";
}

function update(sample) {
  ticks += 1;
  $("ticks").textContent = String(ticks);
  $("last-update").textContent = "last at " + new Date(sample.time * 1000).toLocaleTimeString();
  $("streams").textContent = String(sample.streams);
  $("uptime").textContent = String(sample.uptime);
  for (const name of ["requests", "latency", "load"]) {
    $(name).textContent = String(sample[name]);
    const values = history[name];
    values.push(sample[name]);
    if (values.length > 60) values.shift();
    draw($(name + "-chart"), values, colors[name]);
  }
}

function draw(canvas, values, color) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (values.length < 2) return;
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const x = (i) => (i / (values.length - 1)) * width;
  const y = (v) => height - 6 - ((v - low) / span) * (height - 12);
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.lineTo(width, height);
  ctx.lineTo(0, height);
  ctx.closePath();
  ctx.globalAlpha = 0.12;
  ctx.fillStyle = color;
  ctx.fill();
  ctx.globalAlpha = 1;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("name").value }),
  });
  const body = await response.json();
  if (!response.ok) { $("login-error").textContent = body.message; return; }
  $("login-error").textContent = "";
  show(body.user);
});

$("logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST" });
  show(null);
});

fetch("/api/me").then((r) => r.json()).then((body) => show(body.user));
