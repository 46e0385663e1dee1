package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// TestHTTP serves net/http on a synack listener and sends it requests
// through an http.Client whose transport dials with synack, over memlink.
// The server answers with the SHA-256 of the body and echoes a prefix.
func TestHTTP(t *testing.T) {
	sizes := []int{0, 1 << 20, 64 << 20}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, pairOpts{})
				l, err := p.b.Listen(context.Background(), "tcp", ":80")
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h := sha256.New()
					n, err := io.Copy(h, r.Body)
					if err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
				})}
				go srv.Serve(l)

				tr := &http.Transport{
					DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
						return p.a.DialContext(ctx, network, addr)
					},
				}
				client := &http.Client{Transport: tr}
				body := make([]byte, size)
				rng := rand.NewChaCha8([32]byte{byte(size)})
				rng.Read(body)
				sum := sha256.Sum256(body)
				want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum[:]))

				start := time.Now()
				resp, err := client.Post("http://198.18.0.2/upload", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Fatalf("server saw %q, want %q", got, want)
				}
				t.Logf("%d bytes in %v of virtual time", size, time.Since(start))

				// A second request on the kept-alive connection.
				resp, err = client.Get("http://198.18.0.2/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()

				tr.CloseIdleConnections()
				srv.Close()
				p.close()
			})
		})
	}
}
