package memberlist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// peersFileVersion is the version of the peers file this package writes and
// reads.
const peersFileVersion = 1

// maxPeersFileSize bounds what readPeers reads: a damaged or hostile file
// must not make the node allocate without limit.
const maxPeersFileSize = 4 << 20

// PeersFileError reports a peers file that exists but cannot be used: it is
// unreadable, too large, not in the format this package writes, or lists an
// address that is not host:port. New and Attach return it without changing
// the file; remove the file (the node then starts from its seed list alone)
// or repair it.
type PeersFileError struct {
	Path string // the peers file
	Err  error  // what is wrong with it
}

// Error says which file is damaged, how, and what to do.
func (e *PeersFileError) Error() string {
	return fmt.Sprintf("memberlist: peers file %s is damaged (remove it to start from the seed list): %v", e.Path, e.Err)
}

// Unwrap returns Err.
func (e *PeersFileError) Unwrap() error { return e.Err }

// peer is one known node as saved in the peers file.
type peer struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // memberlist's address, host:port
}

type peersFile struct {
	Version int    `json:"version"`
	Peers   []peer `json:"peers"`
}

// readPeers reads the peers file at path. A missing file is no peers and no
// error: it is how every node starts the first time.
func readPeers(path string) ([]peer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &PeersFileError{Path: path, Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPeersFileSize+1))
	if err != nil {
		return nil, &PeersFileError{Path: path, Err: err}
	}
	peers, err := parsePeers(b)
	if err != nil {
		return nil, &PeersFileError{Path: path, Err: err}
	}
	return peers, nil
}

// parsePeers decodes and checks the content of a peers file.
func parsePeers(b []byte) ([]peer, error) {
	if len(b) > maxPeersFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxPeersFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var pf peersFile
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("not a peers file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the peers list")
	}
	if pf.Version != peersFileVersion {
		return nil, fmt.Errorf("version %d, this node reads version %d", pf.Version, peersFileVersion)
	}
	for i, p := range pf.Peers {
		host, port, err := net.SplitHostPort(p.Addr)
		if err != nil || host == "" {
			return nil, fmt.Errorf("peer %d (%q): address %q is not host:port", i, p.Name, p.Addr)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("peer %d (%q): port %q is not a number from 0 to 65535", i, p.Name, port)
		}
	}
	return pf.Peers, nil
}

// writePeers replaces the file at path with peers, atomically: the content
// goes to a temporary file in the same directory, which is synced, then
// renamed over path, and the directory is synced. A reader (or a crash) sees
// either the old file or the new one, never a mix.
func writePeers(path string, peers []peer) (err error) {
	b, err := json.MarshalIndent(peersFile{Version: peersFileVersion, Peers: peers}, "", "\t")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable. Not every platform can sync a
	// directory; the file is complete either way.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// persister writes the peers file from its own goroutine, so that a change
// reported on one of memberlist's goroutines never waits for the disk.
// Changes that come faster than the disk are coalesced: the file always ends
// up with the latest list.
type persister struct {
	path     string
	snapshot func() []peer
	log      *slog.Logger

	kick chan struct{} // capacity 1: a write is due
	stop chan struct{}
	wg   sync.WaitGroup

	last []peer // what the file holds, as far as this persister knows
}

func startPersister(path string, initial []peer, snapshot func() []peer, log *slog.Logger) *persister {
	p := &persister{
		path: path, snapshot: snapshot, log: log, last: initial,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	p.wg.Go(p.run)
	return p
}

// changed asks for a write. It never blocks.
func (p *persister) changed() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *persister) run() {
	for {
		select {
		case <-p.kick:
			p.save()
		case <-p.stop:
			p.save()
			return
		}
	}
}

// save writes the current peers unless they are what the file holds. An
// empty list is not written: a node whose peers are all gone keeps the last
// ones it knew, which are its best chance to find the cluster again.
func (p *persister) save() {
	peers := p.snapshot()
	if len(peers) == 0 || slices.Equal(peers, p.last) {
		return
	}
	if err := writePeers(p.path, peers); err != nil {
		p.log.Warn("memberlist: cannot save peers", "file", p.path, "err", err)
		return
	}
	p.last = peers
}

// close writes the last change and stops the goroutine.
func (p *persister) close() {
	close(p.stop)
	p.wg.Wait()
}
