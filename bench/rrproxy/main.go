// Command rrproxy is the load balancer of the replica benchmarks (bench/cluster): it
// sends each request to the next of its backends in turn, without stickiness, keeping
// the Host header so that WebDAV Destination headers stay valid.
//
//	rrproxy -listen 127.0.0.1:8080 http://127.0.0.1:8081 http://127.0.0.1:8082 …
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	var backends []*url.URL
	for _, a := range flag.Args() {
		u, err := url.Parse(a)
		if err != nil {
			log.Fatal(err)
		}
		backends = append(backends, u)
	}
	if len(backends) == 0 {
		log.Fatal("rrproxy: no backends")
	}
	var next atomic.Uint64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256 // the benchmarks run 32 clients
	tr.DisableCompression = true
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backends[next.Add(1)%uint64(len(backends))])
			r.Out.Host = r.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
	}
	log.Fatal(http.ListenAndServe(*listen, p))
}
