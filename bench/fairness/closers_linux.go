//go:build linux

package fairness

import (
	"io"
	"sync"
)

// closers is what a real-time pair opened (listeners' sockets, dialed and
// accepted connections), closed together at the end: closing them ends
// every goroutine of the pair (writers fail, readers see EOF or an error).
type closers struct {
	mu sync.Mutex
	cs []io.Closer
}

// add keeps c for closeAll; safe from any goroutine.
func (s *closers) add(c io.Closer) {
	s.mu.Lock()
	s.cs = append(s.cs, c)
	s.mu.Unlock()
}

// closeAll closes everything added so far.
func (s *closers) closeAll() {
	s.mu.Lock()
	for _, c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
}
