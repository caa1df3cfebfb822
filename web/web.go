// Package web holds the chat page the WebSocket listener serves at "/":
// plain HTML, CSS and JavaScript embedded in the binary, so a browser user
// needs nothing installed and an operator nothing built.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Static is the page's file tree (index.html at its root).
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed directive above guarantees the directory
	}
	return sub
}

// Handler serves the page. The page is tiny and changes only with the
// binary, so it is sent with no-cache to pick up an upgrade at once.
func Handler() http.Handler {
	fsrv := http.FileServerFS(Static())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The page talks only to its own origin; no inline script, no
		// third-party anything, so a user's text can never become code.
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		fsrv.ServeHTTP(w, r)
	})
}
