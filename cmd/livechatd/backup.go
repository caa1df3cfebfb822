package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/pflag"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/livechat/livechat/configs"
)

// A backup is a tar file that unpacks into a data_dir: every bbolt store
// as a consistent snapshot taken in a read transaction (so the daemon goes
// on writing meanwhile), the small files next to them as they are, and
// last a manifest with each file's size and SHA-256. Without the manifest
// the archive is incomplete. The stores are snapshotted one after the
// other, each consistent in itself: an account registered during the
// backup may be in accounts.db and not its rooms in rooms.db, which is
// what a crash at that moment would have left too.
//
// A running daemon holds its stores' file locks, so nothing else can open
// them; it serves backups on a Unix socket in data_dir instead
// (control.go), readable only by the data_dir's owner (and root).

// storeFiles are the bbolt files a data_dir may hold, in backup order.
var storeFiles = []string{"accounts.db", "rooms.db", "history.db"}

// plainFiles are copied as they are: each is written once, whole.
var plainFiles = []string{"cloak.key", certFileName, keyFileName}

// manifestName is the archive's last entry.
const manifestName = "livechatd-backup.json"

// snapshotter is a store that can hand out a consistent copy of its file.
type snapshotter interface {
	Backup(fn func(size int64, snap io.WriterTo) error) error
}

type manifest struct {
	Created string         `json:"created"`
	Build   string         `json:"build"`
	Online  bool           `json:"online"` // taken from a running daemon
	Files   []manifestFile `json:"files"`
}

type manifestFile struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// writeBackup writes the archive of dataDir to w: the stores in order
// (stores maps a file name to the open store that owns it; a missing one
// is not backed up), then the plain files that exist, then the manifest.
func writeBackup(w io.Writer, dataDir string, stores map[string]snapshotter, online bool) (*manifest, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	m := &manifest{Created: time.Now().UTC().Format(time.RFC3339), Build: readBuildInfo().String(), Online: online}
	now := time.Now()
	add := func(name string, size int64, body io.WriterTo) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		h := sha256.New()
		n, err := body.WriteTo(io.MultiWriter(tw, h))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("%s: snapshot wrote %d bytes, announced %d", name, n, size)
		}
		m.Files = append(m.Files, manifestFile{Name: name, Bytes: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	for _, name := range storeFiles {
		st := stores[name]
		if st == nil {
			continue
		}
		if err := st.Backup(func(size int64, snap io.WriterTo) error { return add(name, size, snap) }); err != nil {
			return nil, fmt.Errorf("backup of %s: %w", name, err)
		}
	}
	for _, name := range plainFiles {
		data, err := os.ReadFile(filepath.Join(dataDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = add(name, int64(len(data)), bytesWriterTo(data))
		}
		if err != nil {
			return nil, fmt.Errorf("backup of %s: %w", name, err)
		}
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	js = append(js, '\n')
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(js)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(js); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return m, bw.Flush()
}

type bytesWriterTo []byte

func (b bytesWriterTo) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// verifyBackup reads an archive as writeBackup made it and checks every
// file against the manifest, which must come last.
func verifyBackup(r io.Reader) (*manifest, error) {
	tr := tar.NewReader(r)
	type seen struct {
		bytes int64
		sum   string
	}
	var files []string
	got := map[string]seen{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("the archive ends without its manifest: the backup is incomplete")
		}
		if err != nil {
			return nil, fmt.Errorf("the archive is damaged or incomplete: %w", err)
		}
		if hdr.Name == manifestName {
			var m manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return nil, fmt.Errorf("manifest: %w", err)
			}
			if len(m.Files) != len(files) {
				return nil, fmt.Errorf("manifest lists %d files, the archive has %d", len(m.Files), len(files))
			}
			for _, f := range m.Files {
				if g, ok := got[f.Name]; !ok || g.bytes != f.Bytes || g.sum != f.SHA256 {
					return nil, fmt.Errorf("%s does not match the manifest", f.Name)
				}
			}
			if _, err := tr.Next(); err != io.EOF {
				return nil, errors.New("the archive goes on after its manifest")
			}
			return &m, nil
		}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		files = append(files, hdr.Name)
		got[hdr.Name] = seen{n, hex.EncodeToString(h.Sum(nil))}
	}
}

const backupUsage = `Usage: livechatd backup [--config FILE] [--data-dir DIR] --out FILE

Writes a consistent copy of data_dir (accounts.db, rooms.db, history.db as
snapshots, and cloak.key, tls.crt, tls.key if present) to FILE as a tar
archive, "-" for standard output. While the daemon runs the copy comes from
it, through data_dir/livechatd.sock, and chat goes on; while it is stopped
the files are read directly. To restore, stop the daemon and unpack the
archive into an empty data_dir: tar -xf FILE -C DIR.

`

// backupCommand runs `livechatd backup`.
func backupCommand(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("livechatd backup", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, backupUsage+"Flags:\n")
		fs.PrintDefaults()
	}
	configs.RegisterFlags(fs)
	out := fs.String("out", "", "write the archive to `FILE` (\"-\": standard output)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd backup: %v (see livechatd backup --help)\n", err)
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := configs.Load(configs.ConfigPath(fs), fs)
	if err != nil {
		fmt.Fprintln(stderr, "livechatd backup:", err)
		return 2
	}
	m, err := backupTo(cfg.DataDir, *out, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "livechatd backup:", err)
		return 1
	}
	var total int64
	var names []string
	for _, f := range m.Files {
		total += f.Bytes
		names = append(names, f.Name)
	}
	how := "from the files (no daemon running)"
	if m.Online {
		how = "from the running daemon"
	}
	fmt.Fprintf(stderr, "livechatd backup: %s: %v, %d bytes, %s\n", *out, names, total, how)
	return 0
}

// backupTo writes a verified archive of dataDir to out: from the running
// daemon if one answers on its socket, else from the files. A file is
// written beside out and renamed into place once complete and synced, so
// out is never a partial backup.
func backupTo(dataDir, out string, stdout io.Writer) (*manifest, error) {
	write := func(w io.Writer) (*manifest, error) {
		pr, pw := io.Pipe()
		verified := make(chan error, 1)
		var vm *manifest
		go func() {
			var err error
			vm, err = verifyBackup(pr)
			io.Copy(io.Discard, pr)
			verified <- err
		}()
		err := fetchBackup(dataDir, io.MultiWriter(w, pw))
		pw.CloseWithError(err)
		if verr := <-verified; err == nil {
			err = verr
		}
		return vm, err
	}
	if out == "-" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name()) // gone once renamed
	defer f.Close()
	m, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	return m, err
}

// fetchBackup writes the archive to w, asking the daemon if it runs.
func fetchBackup(dataDir string, w io.Writer) error {
	sock := filepath.Join(dataDir, controlSocketName)
	if err := requestBackup(sock, w); !errors.Is(err, errNoDaemon) {
		return err
	}
	// No daemon answers: the files are read directly, each opened
	// read-only under its lock so that a daemon starting meanwhile waits.
	stores := map[string]snapshotter{}
	for _, name := range storeFiles {
		path := filepath.Join(dataDir, name)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("%s is in use, but no daemon answers on %s (is the daemon from another version, or data_dir's path too long for a socket?)", path, sock)
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		defer db.Close()
		stores[name] = boltSnapshotter{db}
	}
	if len(stores) == 0 && !slices.ContainsFunc(plainFiles, func(n string) bool {
		_, err := os.Stat(filepath.Join(dataDir, n))
		return err == nil
	}) {
		return fmt.Errorf("%s holds no livechat data (wrong --data-dir or --config?)", dataDir)
	}
	_, err := writeBackup(w, dataDir, stores, false)
	return err
}

type boltSnapshotter struct{ db *bolt.DB }

func (b boltSnapshotter) Backup(fn func(size int64, snap io.WriterTo) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}
