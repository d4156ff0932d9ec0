// Replaced by the sealed-storage library.
