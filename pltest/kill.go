package pltest

import (
	"io/fs"
	"os"
	"path/filepath"
)

// storedFile is one file or directory of a store directory, as Kill found
// it.
type storedFile struct {
	mode fs.FileMode
	data []byte // nil for a directory
}

// copyDir reads every file under dir into memory, keyed by its path
// relative to dir. A file that vanishes while it is read (the server
// replaced it) is left out, as it would be missing after a crash at that
// moment.
func copyDir(dir string) (map[string]storedFile, error) {
	files := map[string]storedFile{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			files[rel] = storedFile{mode: info.Mode()}
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		files[rel] = storedFile{mode: info.Mode(), data: data}
		return nil
	})
	return files, err
}

// restoreDir makes dir hold exactly files: what is not in files is
// removed, and every file gets its content back.
func restoreDir(dir string, files map[string]storedFile) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	// Directories first, empty ones included.
	for rel, f := range files {
		if f.mode.IsDir() {
			if err := os.MkdirAll(filepath.Join(dir, rel), f.mode.Perm()|0o700); err != nil {
				return err
			}
		}
	}
	for rel, f := range files {
		if f.mode.IsDir() {
			continue
		}
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.data, f.mode.Perm()); err != nil {
			return err
		}
	}
	return nil
}
