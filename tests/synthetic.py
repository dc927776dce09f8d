"""Small MovieLens-shaped data with a planted structure, built in the tests.

Two groups of users: "comedy fans" love comedies and dislike horror, "horror
fans" the reverse. A model worth the name recommends each group its genre.
"""

import csv
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from movierec_dagster.movielens.transforms import LINKS_COLUMNS, MOVIES_COLUMNS, RATINGS_COLUMNS, TAGS_COLUMNS

HEADERS = {"movies.csv": MOVIES_COLUMNS, "ratings.csv": RATINGS_COLUMNS, "tags.csv": TAGS_COLUMNS, "links.csv": LINKS_COLUMNS}
GENRES = ("Comedy", "Horror")
BASE_TIMESTAMP = 1_500_000_000


@dataclass
class SyntheticMovieLens:
    """Rows of the four MovieLens CSVs (as text, without headers) and who is in which group."""

    rows: dict[str, list[list[str]]]
    user_genre: dict[int, str] = field(default_factory=dict)
    movie_genre: dict[int, str] = field(default_factory=dict)

    def count(self, file_name: str) -> int:
        return len(self.rows[file_name])

    def write_folder(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in self.rows.items():
            with (folder / name).open("w", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(HEADERS[name])
                writer.writerows(rows)
        return folder

    def write_zip(self, path: Path, *, omit: tuple[str, ...] = ()) -> Path:
        """A zip laid out like GroupLens's: one folder holding the CSVs."""
        folder = self.write_folder(path.parent / f"{path.stem}-csv")
        with zipfile.ZipFile(path, "w") as bundle:
            for name in self.rows:
                if name not in omit:
                    bundle.write(folder / name, f"ml-synthetic/{name}")
        return path


def planted_movielens(n_users: int = 40, n_movies: int = 60, ratings_per_user: int = 20, seed: int = 7) -> SyntheticMovieLens:
    rng = random.Random(seed)
    movie_genre = {movie_id: GENRES[movie_id % 2] for movie_id in range(1, n_movies + 1)}
    movies = [
        [str(movie_id), f"Movie {movie_id}, The ({1980 + movie_id % 40})", genre + ("|Drama" if movie_id % 5 == 0 else "")]
        for movie_id, genre in movie_genre.items()
    ]
    user_genre = {user_id: GENRES[user_id % 2] for user_id in range(1, n_users + 1)}
    ratings, tags = [], []
    for user_id, loved in user_genre.items():
        for offset, movie_id in enumerate(rng.sample(sorted(movie_genre), ratings_per_user)):
            if movie_genre[movie_id] == loved:
                rating = rng.choice([4.0, 4.5, 5.0])
            else:
                rating = rng.choice([1.0, 1.5, 2.0, 2.5])
            timestamp = BASE_TIMESTAMP + user_id * 10_000 + offset * 60
            ratings.append([str(user_id), str(movie_id), str(rating), str(timestamp)])
            if offset == 0:
                tags.append([str(user_id), str(movie_id), f"{loved.lower()} fan", str(timestamp)])
    links = [[str(movie_id), f"{movie_id:07d}", str(1000 + movie_id)] for movie_id in movie_genre]
    return SyntheticMovieLens(
        rows={"movies.csv": movies, "ratings.csv": ratings, "tags.csv": tags, "links.csv": links},
        user_genre=user_genre,
        movie_genre=movie_genre,
    )
