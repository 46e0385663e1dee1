package admin

import (
	_ "embed"
	"fmt"
	"html"
	"net/http"
	"strings"

	"github.com/synack/synack/tcp"
)

//go:embed page.html
var pageHTML string

// page is pageHTML with the diagram inlined, made once.
var page = strings.Replace(pageHTML, "<!--DIAGRAM-->", Diagram(), 1)

// hostPage is the page marked as the host kernel's: its script then also
// reads api/host and shows the transitions' rates.
var hostPage = strings.Replace(page, "<body>", `<body data-source="host">`, 1)

func servePage(w http.ResponseWriter, r *http.Request) { writePage(w, page) }

// ServeHostPage serves the page for `synack watch --host`, a server that
// answers the page's API (api/diagnose, api/connections, api/events, in
// the shapes this package serves them) for the host kernel's sockets, and
// api/host: the resets and retransmissions per connection. One page for
// both, so the stack's and the kernel's state machines look the same.
func ServeHostPage(w http.ResponseWriter, r *http.Request) { writePage(w, hostPage) }

func writePage(w http.ResponseWriter, p string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Everything the page needs is in it or on this server.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
	fmt.Fprint(w, p)
}

// ServeDiagram serves the diagram alone, as SVG.
func ServeDiagram(w http.ResponseWriter, r *http.Request) { serveDiagram(w, r) }

func serveDiagram(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	fmt.Fprint(w, Diagram())
}

// Geometry of the diagram: RFC 9293 Figure 5, laid out as the RFC draws
// it, with CLOSED twice (at the top, where connections start, and at the
// bottom right, where LAST-ACK and TIME-WAIT end).
const (
	boxW, boxH = 150, 54
	diagW      = 1000
	diagH      = 950
)

type box struct {
	id     string // element id suffix: the state's name, "CLOSED-2" for the second CLOSED
	state  tcp.State
	x, y   float64 // centre
	second bool
}

var boxes = []box{
	{"CLOSED", tcp.Closed, 500, 60, false},
	{"LISTEN", tcp.Listen, 500, 200, false},
	{"SYN-RECEIVED", tcp.SynReceived, 150, 340, false},
	{"SYN-SENT", tcp.SynSent, 850, 340, false},
	{"ESTABLISHED", tcp.Established, 500, 480, false},
	{"FIN-WAIT-1", tcp.FinWait1, 150, 620, false},
	{"CLOSE-WAIT", tcp.CloseWait, 850, 620, false},
	{"FIN-WAIT-2", tcp.FinWait2, 150, 760, false},
	{"CLOSING", tcp.Closing, 500, 760, false},
	{"LAST-ACK", tcp.LastAck, 850, 760, false},
	{"TIME-WAIT", tcp.TimeWait, 500, 900, false},
	{"CLOSED-2", tcp.Closed, 850, 900, true},
}

// edge is one arrow: the transition, its path, its label (event / action,
// as the RFC writes them) and where the label goes.
type edge struct {
	from, to tcp.State
	pts      [][2]float64
	event    string
	action   string
	lx, ly   float64
	anchor   string // text-anchor: start, middle, end
	dashed   bool   // allowed by the RFC's text, not drawn in Figure 5
	twoLine  bool   // the action and the count on a second line
}

var edges = []edge{
	{tcp.Closed, tcp.Listen, [][2]float64{{475, 87}, {475, 173}}, "passive OPEN", "create TCB", 465, 125, "end", false, false},
	{tcp.Listen, tcp.Closed, [][2]float64{{525, 173}, {525, 87}}, "CLOSE", "delete TCB", 535, 125, "start", false, false},
	{tcp.Closed, tcp.SynSent, [][2]float64{{575, 45}, {880, 45}, {880, 313}}, "active OPEN", "snd SYN", 728, 28, "middle", false, false},
	{tcp.SynSent, tcp.Closed, [][2]float64{{820, 313}, {820, 75}, {575, 75}}, "CLOSE", "delete TCB", 700, 97, "middle", false, false},
	{tcp.Listen, tcp.SynReceived, [][2]float64{{450, 227}, {450, 268}, {195, 268}, {195, 313}}, "rcv SYN", "snd SYN,ACK", 320, 250, "middle", false, false},
	{tcp.Listen, tcp.SynSent, [][2]float64{{550, 227}, {550, 268}, {805, 268}, {805, 313}}, "SEND", "snd SYN", 680, 250, "middle", false, false},
	{tcp.SynReceived, tcp.Listen, [][2]float64{{105, 313}, {105, 200}, {425, 200}}, "rcv RST", "", 265, 192, "middle", false, false},
	{tcp.SynSent, tcp.SynReceived, [][2]float64{{775, 340}, {225, 340}}, "rcv SYN", "snd SYN,ACK", 500, 322, "middle", false, false},
	{tcp.SynReceived, tcp.Established, [][2]float64{{195, 367}, {195, 410}, {470, 410}, {470, 453}}, "rcv ACK of SYN", "", 320, 400, "middle", false, false},
	{tcp.SynSent, tcp.Established, [][2]float64{{805, 367}, {805, 410}, {530, 410}, {530, 453}}, "rcv SYN,ACK", "snd ACK", 680, 392, "middle", false, false},
	{tcp.SynReceived, tcp.FinWait1, [][2]float64{{105, 367}, {105, 593}}, "CLOSE", "snd FIN", 115, 470, "start", false, false},
	{tcp.Established, tcp.FinWait1, [][2]float64{{470, 507}, {470, 550}, {195, 550}, {195, 593}}, "CLOSE", "snd FIN", 320, 532, "middle", false, false},
	{tcp.Established, tcp.CloseWait, [][2]float64{{530, 507}, {530, 550}, {850, 550}, {850, 593}}, "rcv FIN", "snd ACK", 690, 532, "middle", false, false},
	{tcp.FinWait1, tcp.FinWait2, [][2]float64{{130, 647}, {130, 733}}, "rcv ACK of FIN", "", 122, 685, "end", false, true},
	{tcp.FinWait1, tcp.Closing, [][2]float64{{225, 612}, {500, 612}, {500, 733}}, "rcv FIN", "snd ACK", 362, 594, "middle", false, false},
	{tcp.FinWait1, tcp.TimeWait, [][2]float64{{200, 647}, {460, 873}}, "rcv FIN + ACK of FIN", "snd ACK", 338, 808, "end", true, true},
	{tcp.FinWait2, tcp.TimeWait, [][2]float64{{130, 787}, {130, 900}, {425, 900}}, "rcv FIN", "snd ACK", 275, 882, "middle", false, false},
	{tcp.Closing, tcp.TimeWait, [][2]float64{{500, 787}, {500, 873}}, "rcv ACK of FIN", "", 510, 825, "start", false, false},
	{tcp.CloseWait, tcp.LastAck, [][2]float64{{850, 647}, {850, 733}}, "CLOSE", "snd FIN", 860, 685, "start", false, false},
	{tcp.LastAck, tcp.Closed, [][2]float64{{850, 787}, {850, 873}}, "rcv ACK of FIN", "", 860, 825, "start", false, false},
	{tcp.TimeWait, tcp.Closed, [][2]float64{{575, 900}, {775, 900}}, "Timeout=2MSL", "delete TCB", 675, 866, "middle", false, true},
}

// DrawnTransitions lists the transitions the diagram draws as arrows, as
// "FROM>TO"; the page lists the others (aborts and resets to CLOSED, ...)
// beside it.
func DrawnTransitions() []string {
	out := make([]string, len(edges))
	for i, e := range edges {
		out[i] = e.from.String() + ">" + e.to.String()
	}
	return out
}

// Diagram returns the state diagram as SVG. Elements the page updates:
// the text with id "n-STATE" (the count of connections in STATE; also
// "n-CLOSED-2") and "t-FROM>TO" (the count of a transition), each with
// class "count" / "tcount".
func Diagram() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="diagram" viewBox="0 0 %d %d" role="img" aria-label="TCP state diagram (RFC 9293 Figure 5) with live counts" font-family="system-ui, sans-serif">`, diagW, diagH)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>` +
		`<marker id="arrow-hot" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c25400"/></marker></defs>`)
	b.WriteString(`<title>RFC 9293 Figure 5: TCP connection state diagram</title>`)
	for _, e := range edges {
		id := e.from.String() + ">" + e.to.String()
		var d strings.Builder
		for i, p := range e.pts {
			if i == 0 {
				fmt.Fprintf(&d, "M%g,%g", p[0], p[1])
			} else {
				fmt.Fprintf(&d, " L%g,%g", p[0], p[1])
			}
		}
		dash := ""
		if e.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<g class="edge" data-transition="%s"><path id="p-%s" d="%s" fill="none" stroke="#555" stroke-width="1.6" marker-end="url(#arrow)"%s/>`,
			html.EscapeString(id), html.EscapeString(id), d.String(), dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="%s" font-size="13" fill="#333">%s`, e.lx, e.ly, e.anchor, html.EscapeString(e.event))
		if e.twoLine {
			fmt.Fprintf(&b, `<tspan x="%g" dy="15">`, e.lx)
			if e.action != "" {
				fmt.Fprintf(&b, `<tspan fill="#777">%s</tspan>`, html.EscapeString(e.action))
			}
		} else if e.action != "" {
			fmt.Fprintf(&b, `<tspan fill="#777"> / %s</tspan>`, html.EscapeString(e.action))
		}
		fmt.Fprintf(&b, `<tspan class="tcount" id="t-%s" font-weight="bold" fill="#999"> ×0</tspan>`, html.EscapeString(id))
		if e.twoLine {
			b.WriteString(`</tspan>`)
		}
		b.WriteString(`</text></g>`)
	}
	for _, bx := range boxes {
		name := bx.state.String()
		x, y := bx.x-boxW/2, bx.y-boxH/2
		cls := "state"
		if bx.second {
			cls += " second"
		}
		fmt.Fprintf(&b, `<g class="%s" data-state="%s"><rect id="b-%s" x="%g" y="%g" width="%d" height="%d" rx="8" fill="#f4f6fb" stroke="#2b4a8b" stroke-width="2"/>`,
			cls, name, bx.id, x, y, boxW, boxH)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" font-size="14" font-weight="600" fill="#1d2b4f">%s</text>`, bx.x, bx.y-6, name)
		fmt.Fprintf(&b, `<text class="count" id="n-%s" x="%g" y="%g" text-anchor="middle" font-size="17" font-weight="700" fill="#999">0</text></g>`,
			bx.id, bx.x, bx.y+17)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
