"""The package version (its own module, so that any module can read it without loading the
package's lazy entry points)."""

__version__ = "0.5.1"
