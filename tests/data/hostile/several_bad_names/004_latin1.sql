-- é
SELECT 1;
