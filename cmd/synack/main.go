// Command synack runs the synack TCP/IP stack: demos on an in-memory
// network, servers and clients on a TUN device, and tools that show and
// diagnose TCP connection states.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/term"

	"github.com/synack/synack/internal/buildinfo"
)

// command is one subcommand. Each lives in its own file and registers
// itself in init, so adding one touches nothing else.
type command struct {
	name    string
	summary string
	run     func(args []string) int // returns the exit status
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: synack COMMAND [flags]\n       synack --version\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'synack COMMAND -h' for a command's flags.")
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the process: asked-for help and the version go to
// stdout with status 0; a missing or unknown command is an error, on
// stderr with status 2.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, buildinfo.Read())
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "synack: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:])
}

// parseFlags parses a command's flags. Help asked for with -h or --help
// goes to stdout (status 0, done); a bad flag's message and the usage go to
// stderr (status 2, done). Usage functions write to fs.Output().
func parseFlags(fs *flag.FlagSet, args []string) (status int, done bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(nil)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		os.Stdout.Write(buf.Bytes())
		return 0, true
	default:
		os.Stderr.Write(buf.Bytes())
		return 2, true
	}
}

// colorOn reports whether to paint output with ANSI escapes: f is a
// terminal, the command's --no-color is not set and neither is NO_COLOR
// (https://no-color.org: any non-empty value turns colour off).
func colorOn(f *os.File, noColorFlag bool) bool { return colorWanted(noColorFlag, isTerminal(f)) }

func colorWanted(noColorFlag, terminal bool) bool {
	return terminal && !noColorFlag && os.Getenv("NO_COLOR") == ""
}

// termWidth is f's width in columns when it is a terminal, else 0 (for the
// ladder: its default width, the same wherever the output goes).
func termWidth(f *os.File) int {
	if !isTerminal(f) {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil || w <= 0 {
		return 0
	}
	return w
}
