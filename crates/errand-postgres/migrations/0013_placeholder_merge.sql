-- Placeholder for a migration of another branch this round; the lead replaces it at merge.
SELECT 1;
