package cluster

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
)

// Proxy forwards TCP connections on a loopback port to the API server, and
// cuts them on demand, as a load balancer or a network blip does: requests
// in flight fail and every watch ends, to be resumed from where it was.
// TLS passes through untouched, so clients keep their credentials.
type Proxy struct {
	listener net.Listener
	target   string

	mu    sync.Mutex
	conns map[net.Conn]net.Conn // client side -> server side
	wg    sync.WaitGroup
}

// StartProxy starts a Proxy to the cluster's API server.
func (c *Cluster) StartProxy() (*Proxy, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{listener: l, target: u.Host, conns: map[net.Conn]net.Conn{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is the address clients use instead of the API server's.
func (p *Proxy) URL() string { return "https://" + p.listener.Addr().String() }

// Cut closes every connection open through the proxy and returns how many
// it closed. New connections are served as before.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for client, server := range p.conns {
		client.Close()
		server.Close()
		delete(p.conns, client)
	}
	return n
}

// Close stops accepting and cuts what is open.
func (p *Proxy) Close() error {
	err := p.listener.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client] = server
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(client, server, client)
		go p.pipe(client, client, server)
	}
}

// pipe copies from src to dst until either end closes, then closes both
// and forgets the connection of client.
func (p *Proxy) pipe(client, dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, client)
	p.mu.Unlock()
}
