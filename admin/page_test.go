package admin_test

import (
	"bytes"
	"fmt"
	"github.com/synack/synack/internal/headless"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/synack/synack/admin"
)

func count(n *html.Node, tag string) int {
	k := 0
	if n.Type == html.ElementNode && n.Data == tag {
		k++
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		k += count(c, tag)
	}
	return k
}

// TestPageDOM loads the page in headless Chromium, lets its script poll
// the JSON endpoints, and checks the diagram's live counts in the DOM.
func TestPageDOM(t *testing.T) {
	bin := headless.Chromium(t)
	w := newWorld(t)
	w.scenario(t, 12)

	dom := headless.Run(t, bin, w.ts.URL+"/", 1400, 1000, "--dump-dom")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	body := headless.ByID(doc, "diagram")
	if body == nil {
		t.Fatalf("no diagram in the DOM:\n%s", dom)
	}
	// The script ran: it marks the body after each refresh.
	var bodyEl *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "body" {
			bodyEl = n
		}
		for c := n.FirstChild; c != nil && bodyEl == nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if bodyEl == nil || headless.Attr(bodyEl, "data-updated") == "" {
		t.Fatalf("the page's script did not refresh; status %q", headless.Text(headless.ByID(doc, "status")))
	}
	// The eleven states, each with its live count.
	want := map[string]string{
		"CLOSED": "0", "LISTEN": "1", "SYN-SENT": "0", "SYN-RECEIVED": "0", "ESTABLISHED": "1",
		"FIN-WAIT-1": "0", "FIN-WAIT-2": "0", "CLOSE-WAIT": "12", "CLOSING": "0", "LAST-ACK": "0", "TIME-WAIT": "1",
	}
	for state, n := range want {
		box := headless.ByID(doc, "n-"+state)
		if box == nil {
			t.Errorf("no count for %s", state)
			continue
		}
		if got := strings.TrimSpace(headless.Text(box)); got != n {
			t.Errorf("%s shows %q, want %s", state, got, n)
		}
		if !strings.Contains(headless.Text(box.Parent), state) {
			t.Errorf("the box of %s does not name it: %q", state, headless.Text(box.Parent))
		}
	}
	// Transition counts on the arrows.
	for tr, n := range map[string]string{"ESTABLISHED>CLOSE-WAIT": "×12", "LISTEN>SYN-RECEIVED": "×14",
		"SYN-RECEIVED>ESTABLISHED": "×14", "FIN-WAIT-2>TIME-WAIT": "×1", "TIME-WAIT>CLOSED": "×0"} {
		if got := strings.TrimSpace(headless.Text(headless.ByID(doc, "t-"+tr))); got != n {
			t.Errorf("arrow %s shows %q, want %s", tr, got, n)
		}
	}
	// Every arrow of the figure is drawn.
	for _, tr := range admin.DrawnTransitions() {
		if headless.ByID(doc, "p-"+tr) == nil {
			t.Errorf("no arrow for %s", tr)
		}
	}
	// The connection table, the latest transitions and the finding.
	if n := count(headless.ByID(doc, "conns"), "tr") - 1; n != 15 {
		t.Errorf("connection table has %d rows, want 15", n)
	}
	ev := headless.Text(headless.ByID(doc, "events"))
	if !strings.Contains(ev, "ESTABLISHED → CLOSE-WAIT") || !strings.Contains(ev, "FIN-WAIT-2 → TIME-WAIT") {
		t.Errorf("latest transitions: %q", ev)
	}
	if f := headless.Text(headless.ByID(doc, "findings")); !strings.Contains(f, "close-wait") || !strings.Contains(f, "12 connections in CLOSE-WAIT") {
		t.Errorf("findings: %q", f)
	}
}

// TestPageScreenshot takes a screenshot of the page and checks it is a
// real picture. SYNACK_SCREENSHOT=path keeps it.
func TestPageScreenshot(t *testing.T) {
	bin := headless.Chromium(t)
	w := newWorld(t)
	w.scenario(t, 12)
	for _, size := range [][2]int{{1400, 1000}, {800, 1000}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) { screenshot(t, bin, w, size[0], size[1]) })
	}
}

// screenshot takes a width x height screenshot of w's page and checks it.
// SYNACK_SCREENSHOT=path.png keeps it as path-WIDTHxHEIGHT.png.
func screenshot(t *testing.T, bin string, w *world, width, height int) {
	out := filepath.Join(t.TempDir(), "page.png")
	if keep := os.Getenv("SYNACK_SCREENSHOT"); keep != "" {
		out, _ = filepath.Abs(strings.TrimSuffix(keep, ".png") + fmt.Sprintf("-%dx%d.png", width, height))
	}
	headless.Run(t, bin, w.ts.URL+"/", width, height, "--screenshot="+out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %v, want %dx%d", b, width, height)
	}
	// Not blank: many colours, and the diagram's orange highlight of the
	// live states is there.
	colours := map[[3]uint32]bool{}
	hot := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if isHot(img, x, y) {
				hot++
			}
		}
	}
	if len(colours) < 50 {
		t.Errorf("screenshot has %d colours: blank?", len(colours))
	}
	if hot < 50 {
		t.Errorf("screenshot has %d highlighted pixels: no live state drawn?", hot)
	}
}

// isHot reports whether the pixel is the page's highlight (#c25400 or
// the #fff4e0 fill of live states).
func isHot(img image.Image, x, y int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	r, g, b = r>>8, g>>8, b>>8
	near := func(a, want uint32) bool { return a+6 >= want && a <= want+6 }
	return (near(r, 0xc2) && near(g, 0x54) && near(b, 0x00)) || (near(r, 0xff) && near(g, 0xf4) && near(b, 0xe0))
}

// probePage loads the admin page in an 800-pixel-wide frame of the same
// origin and, once the page has refreshed, measures it: the page's width
// against the frame's, each section's right edge, and every cell of the
// transitions table against its scroll box. It writes one line per fault
// (and a "checked N" line) into #out, which --dump-dom shows.
const probePage = `<!doctype html>
<html><body style="margin:0">
<iframe id="f" src="/" style="width:800px;height:1000px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
"use strict";
function check() {
  const d = document.getElementById("f").contentDocument;
  if (!d || !d.body || !d.body.dataset.updated || !d.querySelector("#events tbody tr")) { setTimeout(check, 50); return; }
  const out = [];
  const vw = d.documentElement.clientWidth;
  out.push("viewport " + vw);
  if (d.documentElement.scrollWidth > vw) out.push("fault: the page is " + d.documentElement.scrollWidth + " px wide");
  for (const id of ["diagram-section", "side", "conns-section", "findings"]) {
    const r = d.getElementById(id).getBoundingClientRect();
    if (r.right > vw + 1) out.push("fault: #" + id + " ends at " + r.right);
  }
  const box = d.getElementById("events").parentElement.getBoundingClientRect();
  let n = 0;
  for (const row of d.querySelectorAll("#events tr")) {
    for (const c of row.children) {
      const r = c.getBoundingClientRect();
      n++;
      if (r.right > box.right + 1 || r.left < box.left - 1) out.push("fault: cell " + JSON.stringify(c.textContent) + " spans " + r.left + ".." + r.right + " outside " + box.left + ".." + box.right);
    }
  }
  out.push("checked " + n);
  document.getElementById("out").textContent = out.join("\n");
}
check();
</script>
</body></html>`

// Issue 15: at 800 px the page was two squeezed columns and the
// transitions table clipped its cause column.
func TestPageAt800px(t *testing.T) {
	bin := headless.Chromium(t)
	w := newWorld(t)
	w.scenario(t, 12)
	mux := http.NewServeMux()
	mux.Handle("/", w.srv)
	mux.HandleFunc("/probe", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(rw, probePage)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	dom := headless.Run(t, bin, ts.URL+"/probe", 1000, 1200, "--dump-dom")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	out := headless.Text(headless.ByID(doc, "out"))
	if !strings.Contains(out, "viewport 800") || !strings.Contains(out, "checked ") || strings.Contains(out, "checked 0") {
		t.Fatalf("the probe did not measure the page at 800 px:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "fault:") {
			t.Error(line)
		}
	}
}
