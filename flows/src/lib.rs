//! Pure logic over Hubble flows (filters, printers, recordings).
