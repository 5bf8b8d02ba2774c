// loadgen: a native gRPC load generator for jobq's submit benchmark.
//
// It sends one pre-encoded request (the bytes of a protobuf message, read from a file) to one
// unary method, from many concurrent callers, for a fixed time, and prints
// "<ok calls> <errors> <seconds>". Written in Go so that on a 2-core machine the clients take a
// small share of the CPU that Python clients (grpc.aio, ~0.6 ms of CPU per call) would take from
// the server being measured. It knows nothing of jobq's messages: bench/run.py encodes them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
)

// rawCodec passes bytes through: requests are already encoded, responses are only counted.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) Name() string { return "proto" }

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "server address")
	method := flag.String("method", "/jobq.v1.JobService/SubmitJob", "full method name")
	reqFile := flag.String("request", "", "file holding the encoded request message")
	conns := flag.Int("connections", 4, "number of HTTP/2 connections")
	conc := flag.Int("concurrency", 32, "concurrent callers (spread over the connections)")
	seconds := flag.Float64("seconds", 5, "how long to send")
	flag.Parse()

	req := []byte{}
	if *reqFile != "" {
		b, err := os.ReadFile(*reqFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		req = b
	}
	encoding.RegisterCodec(rawCodec{})
	chans := make([]*grpc.ClientConn, *conns)
	for i := range chans {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer cc.Close()
		chans[i] = cc
		var out []byte
		if err := cc.Invoke(context.Background(), *method, &req, &out); err != nil { // warm up
			fmt.Fprintln(os.Stderr, "first call failed:", err)
			os.Exit(1)
		}
	}
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func(cc *grpc.ClientConn) {
			defer wg.Done()
			var out []byte
			for time.Now().Before(end) {
				if err := cc.Invoke(context.Background(), *method, &req, &out); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}(chans[i%len(chans)])
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "first error:", e)
	}
	fmt.Printf("%d %d %.6f\n", ok.Load(), failed.Load(), elapsed)
}
