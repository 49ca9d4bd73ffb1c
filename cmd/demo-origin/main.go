// Command demo-origin is a small origin server for trying accel: it
// answers every path with a page that says when it was made, cacheable for
// a minute, so that a second request through accel shows a cache hit.
//
//	demo-origin -listen 127.0.0.1:9000
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "`address` to serve on")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=60, stale-while-revalidate=30")
		w.Header().Set("Surrogate-Key", "demo")
		fmt.Fprintf(w, "demo origin: %s %s (proto %s), made at %s\n",
			r.Method, r.URL.RequestURI(), r.Proto, time.Now().UTC().Format(time.RFC3339Nano))
	})
	log.Printf("demo origin on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
