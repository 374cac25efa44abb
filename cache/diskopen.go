package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file holds the opening of a Disk: the check of the file before
// bbolt opens it, and the moving aside of a damaged file.

// DiskOptions configures a Disk cache. The zero value is usable.
type DiskOptions struct {
	// MaxBytes bounds the cache: DefaultDiskBytes when <= 0.
	MaxBytes int64
	// Logger receives the cache's rare log lines: a damaged file moved
	// aside, the cache turning itself off after a failure. Nil: nowhere.
	Logger *slog.Logger
}

// damagedKept is how many moved-aside damaged files a directory keeps,
// the newest; older ones are deleted so that repeated damage cannot fill
// the disk.
const damagedKept = 2

// damagedSuffix is put after the cache file's name, with a UTC time, when
// a damaged file is moved aside.
const damagedSuffix = ".corrupt-"

// OpenDisk opens the disk cache in dir, creating dir and the cache file if
// they are missing, bounded to maxBytes (DefaultDiskBytes when <= 0). It is
// OpenDiskWith without a logger.
func OpenDisk(dir string, maxBytes int64) (*Disk, error) {
	return OpenDiskWith(dir, DiskOptions{MaxBytes: maxBytes})
}

// OpenDiskWith opens the disk cache in dir, creating dir and the cache
// file if they are missing. If the file holds more than the bound, the
// least recently used entries are evicted before it returns.
//
// Before bbolt opens the file, its structure is checked (meta pages and
// checksums, every page's header, bounds and key order; values are checked
// entry by entry when read). A damaged file — truncated, overwritten,
// page-corrupted — is renamed to DiskFileName + ".corrupt-" + a UTC time in
// the same directory, logged with both paths, and the cache starts empty;
// the two newest such files are kept. OpenDiskWith fails for a file it
// cannot open or lock, or a directory it cannot write, never for damage.
func OpenDiskWith(dir string, opts DiskOptions) (*Disk, error) {
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultDiskBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create directory: %w", err)
	}
	path := filepath.Join(dir, DiskFileName)
	d, err := openDiskFile(path, maxBytes, log)
	if errors.Is(err, errDamaged) {
		if err := moveAside(path, err, log); err != nil {
			return nil, err
		}
		d, err = openDiskFile(path, maxBytes, log)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// openDiskFile checks the file at path, opens it and sets it up. An error
// wrapping errDamaged means that moving the file aside will help.
func openDiskFile(path string, maxBytes int64, log *slog.Logger) (*Disk, error) {
	if err := checkLocked(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoStatistics:   true,
	})
	if err != nil {
		return nil, err
	}
	d := &Disk{db: db, path: path, maxBytes: maxBytes, log: log, pending: make(map[Key]int64), flushAt: accessFlushThreshold}
	var evicted int64
	err = d.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEntries, bucketAccess, bucketLRU, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				if errors.Is(err, bolt.ErrIncompatibleValue) {
					err = fmt.Errorf("%w: top-level key %q is not a bucket", errDamaged, name)
				}
				return err
			}
		}
		if k, _ := tx.Bucket(bucketLRU).Cursor().Last(); len(k) == 8+len(Key{}) {
			d.lastStamp = int64(binary.BigEndian.Uint64(k))
		}
		u := readUsage(tx)
		var err error
		evicted, err = d.evict(tx, &u)
		if err != nil {
			return err
		}
		return d.writeUsage(tx, u)
	})
	if err != nil {
		_ = closeBolt(db)
		return nil, fmt.Errorf("cache: open %s: %w", path, err)
	}
	d.evictions.Add(evicted)
	return d, nil
}

// checkLocked checks the file at path while holding bbolt's shared lock on
// it, so that no other Disk is writing it meanwhile.
func checkLocked(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && st.Size() == 0 {
		return nil // bbolt makes a new file
	}
	if err != nil {
		return fmt.Errorf("cache: open %s: %w", path, err)
	}
	// A read-only bbolt open takes the lock, validates the meta pages and
	// maps the file without walking it: it fails on damage, it does not
	// panic (and openBolt would catch a panic).
	ro, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer closeBolt(ro)
	if err := checkBoltFile(path); err != nil {
		if errors.Is(err, errDamaged) {
			return fmt.Errorf("cache: %s: %w", path, err)
		}
		return fmt.Errorf("cache: open %s: %w", path, err)
	}
	return nil
}

// openBolt is bolt.Open with a panic or memory fault inside it, and
// bbolt's complaints about the file, turned into errors wrapping
// errDamaged; a file locked by another Disk is an "in use" error.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			// bbolt leaks its file handle here; that happens once, and the
			// file is moved aside next.
			db, err = nil, fmt.Errorf("cache: %s: %w: bbolt panicked opening it: %v", path, errDamaged, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, o)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("cache: %s is in use by another Disk cache", path)
	}
	// The system's errors (opening, locking, mapping the file) are not
	// the file's fault; bbolt's own (a bad meta page, "file size too
	// small") are.
	var pathErr *os.PathError
	var errno syscall.Errno
	if errors.As(err, &pathErr) || errors.As(err, &errno) {
		return nil, fmt.Errorf("cache: open %s: %w", path, err)
	}
	return nil, fmt.Errorf("cache: %s: %w: %w", path, errDamaged, err)
}

// closeBolt closes db, turning a panic into an error.
func closeBolt(db *bolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cache: close %s: bbolt panicked: %v", db.Path(), p)
		}
	}()
	return db.Close()
}

// moveAside renames the damaged file at path out of the way, logs it, and
// deletes older damaged files beyond damagedKept.
func moveAside(path string, reason error, log *slog.Logger) error {
	to := path + damagedSuffix + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, to); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cache: move damaged %s aside: %w", path, err)
	}
	log.Error("cache: disk cache file is damaged; moved it aside and starting empty",
		"path", path, "moved_to", to, "reason", reason)
	old, err := filepath.Glob(path + damagedSuffix + "*")
	if err != nil || len(old) <= damagedKept {
		return nil
	}
	slices.Sort(old) // the suffix sorts by time
	for _, f := range old[:len(old)-damagedKept] {
		if err := os.Remove(f); err == nil {
			log.Info("cache: deleted an older damaged disk cache file", "path", f)
		}
	}
	return nil
}
